"""End to end: export a tiny model, run it with clip_edge in a subprocess that
cannot import keras, tensorflow, jax or torch, and compare with Keras."""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from keras_clip.preprocessing import preprocess_numpy
from keras_clip.tokenizer import CLIPTokenizer
from tests.test_preprocessing import EAGER_MAX, cases, expected, load_case

EXPORT_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export")
BLOCKED = ("keras", "tensorflow", "jax", "jaxlib", "torch", "keras_clip", "keras_hub", "keras_nlp",
           "tf2onnx", "flax")

GUARD = textwrap.dedent(
    f"""
    import importlib.abc, sys
    BLOCKED = {BLOCKED!r}

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("clip_edge must not import " + name)
            return None

    sys.meta_path.insert(0, _Block())
    sys.path.insert(0, {EXPORT_ROOT!r})

    def check_clean():
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
    """
)

EDGE_SCRIPT = GUARD + textwrap.dedent(
    """
    import json, numpy as np
    from PIL import Image
    from clip_edge import ClipEdge

    folder, inputs, out = sys.argv[1:4]
    data = np.load(inputs)
    with open(data["spec"].item()) as f:
        spec = json.load(f)
    images = [data["a"], data["b"], Image.open(spec["png"]), spec["png"]]
    edge = ClipEdge(folder)
    np.savez(
        out,
        images=edge.encode_images(images),
        images_normalized=edge.encode_images(images, normalized=True),
        texts=edge.encode_texts(spec["texts"]),
        token_ids=edge.tokenize(spec["texts"]),
        probabilities=edge.zero_shot(images, spec["labels"], spec["templates"]),
        similarity=edge.similarity(images, spec["texts"]),
    )
    check_clean()
    print("EDGE_OK", edge.providers)
    """
)

# Every runtime x pre-processing path, with file bytes and the conformance check.
PATHS_SCRIPT = GUARD + textwrap.dedent(
    """
    import io, numpy as np
    from PIL import Image
    from clip_edge import ClipEdge

    folder, runtime, preprocess = sys.argv[1:4]
    edge = ClipEdge(folder, runtime=runtime, preprocess=preprocess)
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(buffer, format="PNG")
    images = edge.encode_images([np.zeros((9, 13, 3), np.uint8), buffer.getvalue()])
    texts = edge.encode_texts(["a photo of a cat", "café"])
    passed = edge.verify().passed
    check_clean()
    print("EDGE_OK", edge.preprocessing, images.shape, texts.shape, passed)
    """
)

LABELS = ["cat", "dog", "car", "tree", "boat"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}.", "itap of a {}"]
TEXTS = ["a photo of a cat", "Two dogs, 3 balls!", "café &amp; croissant", "x " * 90]


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def exported(tiny_export, tmp_path_factory):
    """The session's tiny export (tests/conftest.py) and three test images in a folder of our own."""
    model, folder, _ = tiny_export
    root = tmp_path_factory.mktemp("edge")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 33), dtype=np.uint8)  # grayscale, portrait
    png = str(root / "c.png")
    Image.fromarray(rng.integers(0, 256, (37, 37, 4), dtype=np.uint8)).save(png)  # RGBA
    return model, folder, root, (a, b, png)


def _edge_module(name):
    """A clip_edge module, imported from export/ as the edge runtime ships it."""
    if EXPORT_ROOT not in sys.path:
        sys.path.insert(0, EXPORT_ROOT)
    return importlib.import_module(name)


@pytest.mark.parametrize("name", list(cases.CASES))
def test_clip_edge_preprocessing_matches_golden(name):
    """clip_edge's Keras-free copy of the eager path against open_clip's output,
    odd crop margins included (rocket, hubble, ihc_odd, moon, astronaut_tall)."""
    image = load_case(name)
    size = cases.CASES[name][1]
    out = _edge_module("clip_edge.preprocess").preprocess([image], size)
    assert out.dtype == np.float32 and out.shape == (1, size, size, 3)
    d = np.abs(out[0] - expected(name))
    assert d.mean() <= EAGER_MAX and d.max() <= EAGER_MAX, (d.mean(), d.max())


def _keras_reference(model, images):
    a, b, png = images
    pixels = preprocess_numpy([a, b, Image.open(png), Image.open(png)], model.image_size)
    image_embeddings = np.asarray(keras.ops.convert_to_numpy(model.encode_image(pixels)))
    ids = CLIPTokenizer()(TEXTS)
    text_embeddings = np.asarray(keras.ops.convert_to_numpy(model.encode_text(ids)))
    return image_embeddings, ids, text_embeddings


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_clip_edge_matches_keras_without_importing_frameworks(exported):
    model, folder, root, images = exported
    spec = {"png": images[2], "texts": TEXTS, "labels": LABELS, "templates": TEMPLATES}
    with open(root / "spec.json", "w") as file:
        json.dump(spec, file)
    np.savez(root / "inputs.npz", a=images[0], b=images[1], spec=str(root / "spec.json"))
    script = root / "edge_script.py"
    script.write_text(EDGE_SCRIPT)
    result = _run([str(script), folder, str(root / "inputs.npz"), str(root / "out.npz")])
    assert result.returncode == 0 and "EDGE_OK" in result.stdout, result.stderr[-3000:]
    edge = np.load(root / "out.npz")

    image_embeddings, ids, text_embeddings = _keras_reference(model, images)
    np.testing.assert_array_equal(edge["token_ids"], ids)
    for name, reference in (("images", image_embeddings), ("texts", text_embeddings)):
        scale = np.abs(reference).max()
        assert np.abs(edge[name] - reference).max() <= 1e-4 * scale, name
    np.testing.assert_allclose(edge["images_normalized"], _unit(image_embeddings), atol=1e-5)
    np.testing.assert_allclose(
        edge["similarity"], _unit(image_embeddings) @ _unit(text_embeddings).T, atol=1e-5
    )

    tokenizer = CLIPTokenizer()
    prompts = [t.format(label) for label in LABELS for t in TEMPLATES]
    prompt_embeddings = keras.ops.convert_to_numpy(model.encode_text(tokenizer(prompts)))
    classes = _unit(_unit(np.asarray(prompt_embeddings)).reshape(len(LABELS), len(TEMPLATES), -1).mean(1))
    logits = float(model.logit_scale) * _unit(image_embeddings) @ classes.T
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    np.testing.assert_allclose(edge["probabilities"], probabilities, atol=1e-4)
    np.testing.assert_array_equal(edge["probabilities"].argmax(-1), probabilities.argmax(-1))


@pytest.mark.parametrize("runtime", ["onnx", "litert"])
@pytest.mark.parametrize("preprocess", ["graph", "python"])
def test_clip_edge_never_imports_frameworks_on_any_path(exported, tmp_path, runtime, preprocess):
    script = tmp_path / "paths_script.py"
    script.write_text(PATHS_SCRIPT)
    result = _run([str(script), exported[1], runtime, preprocess])
    assert result.returncode == 0 and "EDGE_OK" in result.stdout, result.stderr[-3000:]
    assert result.stdout.split()[1] == preprocess and result.stdout.split()[-1] == "True", result.stdout


def test_clip_edge_cli_embed_and_classify(exported):
    model, folder, root, images = exported
    photos = root / "photos"
    photos.mkdir(exist_ok=True)
    Image.fromarray(images[0]).save(photos / "a.png")
    Image.fromarray(images[1]).save(photos / "b.jpg", quality=95)
    (root / "captions.txt").write_text("a photo of a cat\nTwo dogs\n")
    runner = GUARD + "import runpy\nsys.argv = ['clip_edge'] + sys.argv[1:]\n"
    runner += "try:\n    runpy.run_module('clip_edge', run_name='__main__')\n"
    runner += "except SystemExit as e:\n    check_clean()\n    raise\n"
    script = root / "cli_runner.py"
    script.write_text(runner)

    out = root / "captions.npy"
    result = _run([str(script), "embed", folder, "--texts", str(root / "captions.txt"), "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    embeddings = np.load(out)
    reference = keras.ops.convert_to_numpy(
        model.encode_text(CLIPTokenizer()(["a photo of a cat", "Two dogs"]))
    )
    np.testing.assert_allclose(embeddings, _unit(np.asarray(reference)), atol=1e-5)

    out = root / "photos.npy"
    result = _run([str(script), "embed", folder, "--images", str(photos), "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.load(out).shape == (2, 64)

    result = _run([str(script), "classify", folder, str(photos), "--labels", "cat,dog,car", "--json"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [os.path.basename(r["image"]) for r in rows] == ["a.png", "b.jpg"]
    assert all(r["label"] in ("cat", "dog", "car") and 0 < r["probability"] <= 1 for r in rows)


def test_clip_edge_tokenizer_matches_golden_corpus():
    import gzip

    if EXPORT_ROOT not in sys.path:
        sys.path.insert(0, EXPORT_ROOT)
    from clip_edge.tokenizer import Tokenizer

    from keras_clip.tokenizer import DEFAULT_VOCABULARY

    golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
    with open(os.path.join(golden, "tokenizer_corpus.json.gz"), "rb") as file:
        corpus = json.loads(gzip.decompress(file.read()))
    reference = np.load(os.path.join(golden, "tokenizer_ids.npz"))["ids"]
    np.testing.assert_array_equal(Tokenizer(DEFAULT_VOCABULARY)(corpus), reference)
