"""Static int8 keeps zero-shot predictions: the int8 ONNX towers' top-1 class against Keras'.

The default cases use a tiny random-weight model (fixed seed) on the bundled
shapes: random weights leave small margins between classes, so the bound is
lower than for a trained model (measured: 94% with calibration, 12% with an
all-zero calibration set). The `large` case trains `keras-clip demo`'s model and
holds static int8 to the issue's bar, 99%.
"""

import os

import keras
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from keras_clip import CLIPTokenizer, evaluation
from keras_clip.export import calibration, export_towers, quantize
from keras_clip.export.quantize import to_int8
from keras_clip.models import CLIP
from tests.conftest import tiny_config

TEMPLATE = "a photo of a {}."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`(folder, images, class_names, keras_predictions)` for a tiny fp32 ONNX export."""
    keras.utils.set_random_seed(1)
    model = CLIP(tiny_config("vit", embed_dim=64, vocab_size=49408))
    folder = str(tmp_path_factory.mktemp("agreement") / "export")
    export_towers(model, folder, formats=("onnx",))
    data = evaluation.synthetic_classification(200, model.image_size, 7, "all")
    texts = [TEMPLATE.format(name) for name in data.class_names]
    predictions = np.argmax(evaluation.encode_images(model, data.images, normalize=True)
                            @ evaluation.encode_texts(model, texts, normalize=True).T, axis=1)
    return folder, data.images, data.class_names, predictions


def _static_towers(folder, target):
    """Static int8 copies of both towers of `folder` in `target`: `{tower: path}`."""
    paths = {}
    for tower in ("image_encoder", "text_encoder"):
        paths[tower] = os.path.join(target, f"{tower}.int8.onnx")
        to_int8(os.path.join(folder, f"{tower}.onnx"), paths[tower], method="static")
    return paths


def _agreement(paths, images, class_names, keras_predictions):
    import onnxruntime as ort

    def run(path, name, values):
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(["normalized_embeddings"], {name: values})[0]

    ids = np.asarray(CLIPTokenizer()([TEMPLATE.format(n) for n in class_names]), np.int32)
    scores = run(paths["image_encoder"], "images", images) @ run(
        paths["text_encoder"], "token_ids", ids).T
    return float(np.mean(np.argmax(scores, axis=1) == keras_predictions))


def test_static_int8_agrees_with_keras(tiny, tmp_path):
    folder, images, class_names, predictions = tiny
    agreement = _agreement(_static_towers(folder, str(tmp_path)), images, class_names,
                           predictions)
    print(f"static int8 zero-shot agreement with Keras, tiny random model: {agreement:.1%}")
    assert agreement >= 0.85, agreement


def test_the_bound_fails_without_calibration(tiny, tmp_path, monkeypatch):
    folder, images, class_names, predictions = tiny
    real = calibration.calibration_batches
    monkeypatch.setattr(calibration, "calibration_batches", lambda path, images=None: [
        {name: np.zeros_like(value) for name, value in batch.items()}
        for batch in real(path, images)])
    agreement = _agreement(_static_towers(folder, str(tmp_path)), images, class_names,
                           predictions)
    assert agreement < 0.5, agreement


def test_ranges_merged_in_strides_equal_one_pass(tiny, tmp_path, monkeypatch):
    folder, _, _, _ = tiny
    source = os.path.join(folder, "text_encoder.onnx")  # 64 calibration batches
    written = {}
    for name, stride in (("one_pass", lambda count, most=8: count),
                         ("per_batch", lambda count, most=8: 1)):
        monkeypatch.setattr(quantize, "_stride", stride)
        written[name] = str(tmp_path / f"{name}.onnx")
        to_int8(source, written[name], method="static")
    one_pass, per_batch = ({i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
                           for path in written.values())
    assert one_pass.keys() == per_batch.keys()
    for name, value in one_pass.items():
        np.testing.assert_array_equal(value, per_batch[name], err_msg=name)


@pytest.mark.large
def test_static_int8_keeps_99_percent_agreement_on_the_demo_model(tmp_path):
    from keras_clip.demo import run_demo

    summary = run_demo(str(tmp_path / "demo"), verbose=0)
    figures = summary["edge_runtime"]["int8_static"]
    print(f"demo model, static int8 vs Keras: {figures}")
    assert figures["zero_shot_agreement"] >= 0.99, figures
    assert figures["image_cosine_min"] >= 0.99 and figures["text_cosine_min"] >= 0.99, figures
