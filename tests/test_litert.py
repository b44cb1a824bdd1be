"""LiteRT export of the towers, run with ai-edge-litert (not TensorFlow's tf.lite).

One module-scoped fixture exports a tiny ViT CLIP's towers in fp32, fp16 and
int8 on the current backend (jax and torch through a TensorFlow subprocess).
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_clip.export.litert import (
    convert_saved_model,
    export_litert,
    run_litert,
)
from keras_clip.export.parity import compare, keras_embeddings, sample_inputs
from keras_clip.models import CLIP
from tests.conftest import tiny_config

pytest.importorskip("ai_edge_litert")

MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}
TOWERS = ("image_encoder", "text_encoder")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(4)
    model = CLIP(tiny_config("vit", embed_dim=64))
    folder = str(tmp_path_factory.mktemp("litert"))
    files = export_litert(model, folder, fp16=True, int8=True)
    return model, folder, files


def test_files_written(exported):
    _, folder, files = exported
    assert files == {
        tower: {"fp32": f"{tower}.tflite", "fp16": f"{tower}.fp16.tflite",
                "int8": f"{tower}.int8.tflite"}
        for tower in TOWERS
    }
    for variants in files.values():
        sizes = {v: os.path.getsize(os.path.join(folder, f)) for v, f in variants.items()}
        assert sizes["int8"] < sizes["fp16"] < sizes["fp32"], sizes


@pytest.mark.parametrize("variant", list(MIN_COSINE))
@pytest.mark.parametrize("tower", TOWERS)
def test_parity_batch_1_and_5(exported, tower, variant):
    model, folder, files = exported
    path = os.path.join(folder, files[tower][variant])
    for batch in (1, 5):
        inputs = sample_inputs(model, tower, batch, seed=batch)
        embeddings, normalized = run_litert(path, inputs)
        figures = compare(keras_embeddings(model, tower, inputs), embeddings)
        print(f"litert {tower} {variant} batch {batch}: {figures}")
        assert embeddings.shape == (batch, 64) and figures["finite"], figures
        assert figures["min_cosine"] >= MIN_COSINE[variant], figures
        np.testing.assert_allclose(np.linalg.norm(normalized, axis=-1), 1.0, atol=1e-5)
        unit = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)
        np.testing.assert_allclose(normalized, unit, atol=1e-5)


def test_signature_names_and_dynamic_batch(exported):
    from ai_edge_litert.interpreter import Interpreter

    _, folder, files = exported
    for tower, (input_name, shape) in {"image_encoder": ("images", [-1, 32, 32, 3]),
                                       "text_encoder": ("token_ids", [-1, 77])}.items():
        interpreter = Interpreter(model_path=os.path.join(folder, files[tower]["fp32"]))
        signature = interpreter.get_signature_list()["serving_default"]
        assert signature == {"inputs": [input_name], "outputs": ["embeddings", "normalized_embeddings"]}
        details = interpreter.get_signature_runner().get_input_details()[input_name]
        assert details["shape_signature"].tolist() == shape


LITERT_ONLY = textwrap.dedent(
    """
    import importlib.abc, sys
    import numpy as np

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "jax", "torch", "keras_clip"):
                raise ImportError("blocked " + name)

    sys.meta_path.insert(0, _Block())
    from ai_edge_litert.interpreter import Interpreter

    path, inputs, out = sys.argv[1:4]
    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    np.save(out, runner(token_ids=np.load(inputs))["embeddings"])
    """
)


def test_runs_without_tensorflow(exported, tmp_path):
    model, folder, files = exported
    inputs = sample_inputs(model, "text_encoder", 3, seed=7)
    np.save(tmp_path / "ids.npy", inputs)
    script = tmp_path / "run.py"
    script.write_text(LITERT_ONLY)
    path = os.path.join(folder, files["text_encoder"]["fp32"])
    result = subprocess.run([sys.executable, str(script), path, str(tmp_path / "ids.npy"),
                             str(tmp_path / "out.npy")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = compare(keras_embeddings(model, "text_encoder", inputs), np.load(tmp_path / "out.npy"))
    assert figures["min_cosine"] >= MIN_COSINE["fp32"], figures


def test_argument_errors(exported, tmp_path):
    model = exported[0]
    with pytest.raises(ValueError, match=r"`model` must be a keras_clip.CLIP, received TextTransformerEncoder"):
        export_litert(model.text_encoder, str(tmp_path))
    with pytest.raises(ValueError, match=r"`towers` must be a non-empty subset.*received \('vision',\)"):
        export_litert(model, str(tmp_path), towers="vision")
    with pytest.raises(ValueError, match=r"`variant` must be one of .*received 'int4'"):
        convert_saved_model(str(tmp_path), "int4")
    assert not os.listdir(tmp_path)


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="converts in-process on tensorflow")
def test_non_tensorflow_backend_without_subprocess_says_which_backend_can(exported, tmp_path):
    backend = keras.backend.backend()
    expected = f"the {backend} backend needs subprocess=True .*KERAS_BACKEND=tensorflow"
    with pytest.raises(ValueError, match=expected):
        export_litert(exported[0], str(tmp_path), subprocess=False)
