"""clip_edge on either runtime (ONNX Runtime, LiteRT) and either pre-processing path
(the folder's ONNX graphs, or Python), bad input on both, and `clip-edge verify`
against the folder's conformance file (issue 12, items 4 and 5)."""

import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_clip.export.manifest import file_entries
from keras_clip.export.onnx_export import export_onnx
from keras_clip.models import CLIP
from tests.conftest import tiny_config
from tests.edge_folders import copy_folder, edit_manifest
from tests.test_edge import EXPORT_ROOT

if EXPORT_ROOT not in sys.path:
    sys.path.insert(0, EXPORT_ROOT)

from clip_edge import ClipEdge


PATHS = ("graph", "python")
NEW_KEYS = ("graphs", "litert", "conformance")
@pytest.fixture(scope="module")
def folder(tiny_export):
    """The session's tiny export (tests/conftest.py); tests copy it before editing."""
    return tiny_export[1]


@pytest.fixture(scope="module")
def conformance(folder):
    with np.load(os.path.join(folder, "conformance.npz")) as data:
        return {key: data[key] for key in data.files}


def _images(data):
    return [data[f"image_{i}"] for i in range(int(data["image_count"]))]


def _cosines(a, b):
    a, b = (x / np.linalg.norm(x, axis=-1, keepdims=True) for x in (a, b))
    return np.sum(a * b, axis=-1)


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["PYTHONPATH"] = EXPORT_ROOT
    return subprocess.run([sys.executable, "-m", "clip_edge", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


# ------------------------------------------------------------- the two paths
def test_default_path_follows_the_manifest(folder):
    edge = ClipEdge(folder)
    assert (edge.runtime, edge.precision, edge.preprocessing) == ("onnx", "fp32", "graph")


def test_graph_ids_equal_python_ids_on_conformance_captions(folder, conformance):
    captions = [str(c) for c in conformance["captions"]]
    graph = ClipEdge(folder, preprocess="graph").tokenize(captions)
    python = ClipEdge(folder, preprocess="python").tokenize(captions)
    np.testing.assert_array_equal(graph, python)
    np.testing.assert_array_equal(graph, conformance["token_ids"])


def test_graph_preprocessed_image_embeddings_match_stored(folder, conformance):
    edge = ClipEdge(folder, preprocess="graph")
    images = _images(conformance)
    assert _cosines(edge.encode_images(images), conformance["image_embeddings"]).min() >= 0.999
    encoded = []
    for image in images:  # the same pixels as PNG file bytes
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    np.testing.assert_allclose(edge.encode_images(encoded), edge.encode_images(images), atol=1e-6)


@pytest.mark.parametrize("preprocess", PATHS)
def test_grayscale_and_rgba_images_run_on_both_paths(folder, preprocess):
    edge = ClipEdge(folder, preprocess=preprocess)
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (21, 40), dtype=np.uint8)
    rgba = rng.integers(0, 256, (30, 19, 4), dtype=np.uint8)
    out = edge.preprocess([gray, gray[:, :, None], rgba])
    assert out.shape == (3, edge.image_size, edge.image_size, 3)
    np.testing.assert_array_equal(out[0], out[1])


def test_both_paths_give_close_pixels(folder, conformance):
    images = _images(conformance)
    graph = ClipEdge(folder, preprocess="graph").preprocess(images)
    python = ClipEdge(folder, preprocess="python").preprocess(images)
    assert np.abs(graph - python).mean() <= 0.01


# ------------------------------------------------------------------ verify
def test_litert_fp32_passes_verify(folder):
    result = ClipEdge(folder, runtime="litert").verify()
    assert result.passed, result.lines()
    assert result.cosines["image_encoder"] >= 0.999 and result.cosines["text_encoder"] >= 0.9999
    assert result.token_agreement == 1.0


@pytest.mark.parametrize("preprocess", PATHS)
def test_onnx_passes_verify_on_both_paths(folder, preprocess):
    result = ClipEdge(folder, preprocess=preprocess).verify()
    assert result.passed and result.lines()[-1].startswith("PASS"), result.lines()


def test_cli_verify_passes_on_a_fresh_folder(folder):
    result = _cli("verify", folder)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["image_encoder", "text_encoder", "token ids"]
    assert lines[-1].startswith("PASS (onnx fp32, graph pre-processing")


def _swap_image_tower(copy, tmp_path):
    """Replaces image_encoder.onnx by another model's image tower, re-hashed in the manifest."""
    keras.utils.set_random_seed(6)
    other = CLIP(tiny_config("vit", embed_dim=64, vocab_size=49408))
    export_onnx(other, "image_encoder", os.path.join(copy, "image_encoder.onnx"))
    edit_manifest(copy, lambda m: m["files"].update(file_entries(copy, ["image_encoder.onnx"])))


def test_cli_verify_fails_on_a_swapped_tower(folder, tmp_path):
    copy = str(copy_folder(folder, tmp_path))
    _swap_image_tower(copy, tmp_path)
    result = _cli("verify", copy, "--preprocess", "python")
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("image_encoder:") and lines[0].endswith("BELOW"), lines
    assert lines[1].endswith(" ok") and lines[-1].startswith("FAIL"), lines
    assert "Traceback" not in result.stderr


def test_verify_uses_the_manifest_thresholds(folder, tmp_path):
    copy = str(copy_folder(folder, tmp_path))
    edit_manifest(copy, lambda m: m["conformance"]["thresholds"]["fp32"].update(image=1.0, text=1.0))
    assert not ClipEdge(copy).verify().passed  # float32 runtimes do not reach exactly 1.0


def test_tampered_conformance_file_is_refused(folder, tmp_path):
    copy = str(copy_folder(folder, tmp_path))
    with open(os.path.join(copy, "conformance.npz"), "ab") as file:
        file.write(b"x")
    with pytest.raises(ValueError, match="SHA-256 mismatch.*conformance.npz"):
        ClipEdge(copy).verify()


# --------------------------------------------------------------- old folders
@pytest.fixture
def old_folder(folder, tmp_path):
    """The folder as exported before issue 12: no graphs, LiteRT or conformance keys."""
    copy = str(copy_folder(folder, tmp_path))
    edit_manifest(copy, lambda m: [m.pop(key) for key in NEW_KEYS])
    return copy


def test_old_folder_works_with_python_preprocessing(old_folder, conformance):
    edge = ClipEdge(old_folder)
    assert edge.preprocessing == "python"
    captions = [str(c) for c in conformance["captions"]]
    np.testing.assert_array_equal(edge.tokenize(captions), conformance["token_ids"])
    assert _cosines(edge.encode_images(_images(conformance)), conformance["image_embeddings"]).min() >= 0.999


def test_old_folder_gives_clear_errors_for_graph_litert_and_verify(old_folder):
    with pytest.raises(ValueError, match="predates the pre-processing graphs.*preprocess='python'"):
        ClipEdge(old_folder, preprocess="graph")
    with pytest.raises(ValueError, match="has no litert towers"):
        ClipEdge(old_folder, runtime="litert")
    with pytest.raises(ValueError, match="exported before conformance files.*re-export"):
        ClipEdge(old_folder).verify()
    result = _cli("verify", old_folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "exported before conformance files" in result.stderr


@pytest.mark.parametrize("args", [("verify", "no/such/folder"), ("verify", "{fp32_only}", "--precision", "int8")])
def test_cli_verify_bad_input_exits_2(folder, tmp_path, args):
    fp32_only = copy_folder(folder, tmp_path)  # no int8 towers
    edit_manifest(fp32_only, lambda m: [variants.pop("int8") for variants in m["onnx"].values()])
    result = _cli(*(a.format(fp32_only=fp32_only) for a in args))
    assert result.returncode == 2 and result.stderr.startswith("clip-edge: error: "), result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- bad input
BAD_TEXTS = [(["a cat", 3], "must be a str; element 1 is int: 3"),
             (["a cat", None], "must be a str; element 1 is NoneType"),
             (7, "Expected a string or a list of strings, received int")]


def _truncated_jpeg():
    """The bytes of a 32x32 JPEG without its last 200 bytes."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    return buffer.getvalue()[:-200]


BAD_IMAGES = [
    ([np.zeros((4, 4, 3), np.uint8), np.zeros(12, np.uint8)], r"images\[1\]: .*shape \(H, W, 3\).*received \(12,\)"),
    ([np.zeros((1, 4, 4, 3), np.uint8)], r"images\[0\]: .*received \(1, 4, 4, 3\)"),
    ([np.zeros((0, 5, 3), np.uint8)], r"images\[0\]: .*empty image of shape \(0, 5, 3\)"),
    ([np.zeros((5, 0), np.uint8)], r"images\[0\]: .*empty image of shape \(5, 0\)"),
    ([b"certainly not a JPEG"], r"images\[0\]: 20 bytes is not an image file Pillow can decode"),
    ([np.zeros((4, 4, 3), np.uint8), _truncated_jpeg()],
     r"images\[1\]: \d+ bytes is truncated or damaged; Pillow could not decode it \(image file is truncated"),
    ([np.zeros((4, 4, 3), np.float32)], r"images\[0\]: .*must be uint8"),
]


@pytest.mark.parametrize("preprocess", PATHS)
def test_empty_caption_list_gives_empty_embeddings(folder, preprocess):
    edge = ClipEdge(folder, preprocess=preprocess)
    assert edge.encode_texts([]).shape == (0, 64) and edge.encode_images([]).shape == (0, 64)


@pytest.mark.parametrize("preprocess", PATHS)
@pytest.mark.parametrize("texts, match", BAD_TEXTS)
def test_bad_texts_are_one_line_errors(folder, preprocess, texts, match):
    with pytest.raises(ValueError, match=match) as error:
        ClipEdge(folder, preprocess=preprocess).encode_texts(texts)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("preprocess", PATHS)
@pytest.mark.parametrize("images, match", BAD_IMAGES)
def test_bad_images_are_one_line_errors(folder, preprocess, images, match):
    with pytest.raises(ValueError, match=match) as error:
        ClipEdge(folder, preprocess=preprocess).encode_images(images)
    assert "\n" not in str(error.value)


def test_missing_runtime_packages_name_the_install(folder, monkeypatch):
    import importlib.util

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ValueError, match=r'needs ai-edge-litert: pip install "clip-edge\[litert\]"'):
        ClipEdge(folder, runtime="litert")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime_extensions" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"needs onnxruntime-extensions: pip install \"clip-edge\[cpu\]\""):
        ClipEdge(folder, preprocess="graph")
    assert ClipEdge(folder, preprocess="python").preprocessing == "python"


def test_graph_outside_the_folder_is_refused(folder, tmp_path):
    copy = str(copy_folder(folder, tmp_path))
    edit_manifest(copy, lambda m: m["graphs"].update(text_tokenizer="../text_tokenizer.onnx"))
    with pytest.raises(ValueError, match="graphs.text_tokenizer.*outside the export folder"):
        ClipEdge(copy, preprocess="python")
