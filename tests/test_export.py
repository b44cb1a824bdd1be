"""Export of the towers to ONNX / SavedModel on the current Keras backend.

Exports are slow, so they are written once: the session's tiny ViT export
(`tiny_export` in tests/conftest.py: both towers, every format, fp16 and static
int8) and a module-scoped tiny ResNet CLIP (image tower, fp16; its text tower
is the same architecture as the ViT model's).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import onnx
import pytest

import keras_clip
from keras_clip.digest import sha256_file
from keras_clip.export import export_towers, read_manifest
from keras_clip.export.manifest import FORMAT_VERSION
from keras_clip.export.parity import (
    compare,
    keras_embeddings,
    load_saved_model,
    onnx_parity,
    run_onnx,
    sample_inputs,
    saved_model_parity,
)
from keras_clip.export.quantize import to_int8
from keras_clip.export.saved_model import export_saved_model
from keras_clip.models import CLIP
from keras_clip.tokenizer import CLIPTokenizer
from tests.conftest import tiny_config

EXPORT_ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "export")
TOLERANCE = 1e-4  # max abs difference / max |output|


def _tiny_model(vision, seed):
    keras.utils.set_random_seed(seed)
    return CLIP(tiny_config(vision, embed_dim=64, vocab_size=49408))


@pytest.fixture(scope="module")
def exports(tiny_export, tmp_path_factory):
    resnet = _tiny_model("resnet", 2)
    resnet_dir = str(tmp_path_factory.mktemp("exports") / "resnet")
    resnet_manifest = export_towers(resnet, resnet_dir, fp16=True, towers=("image_encoder",))
    return {"vit": tiny_export, "resnet": (resnet, resnet_dir, resnet_manifest)}


CASES = [("vit", "image_encoder"), ("vit", "text_encoder"), ("resnet", "image_encoder")]


@pytest.mark.parametrize("family,tower", CASES)
def test_onnx_parity_batch_1_and_5(exports, family, tower):
    model, directory, manifest = exports[family]
    path = os.path.join(directory, manifest["onnx"][tower]["fp32"])
    for batch in (1, 5):
        inputs = sample_inputs(model, tower, batch, seed=batch)
        reference = keras_embeddings(model, tower, inputs)
        embeddings, normalized = run_onnx(path, inputs)
        assert embeddings.shape == (batch, 64)
        figures = compare(reference, embeddings)
        assert figures["relative"] <= TOLERANCE, figures
        unit = reference / np.linalg.norm(reference, axis=-1, keepdims=True)
        np.testing.assert_allclose(normalized, unit, atol=1e-5)


@pytest.mark.parametrize("family,tower", CASES)
def test_saved_model_parity_batch_1_and_5(exports, family, tower):
    model, directory, manifest = exports[family]
    figures = saved_model_parity(model, os.path.join(directory, manifest["saved_model"][tower]), tower)
    assert figures["relative"] <= TOLERANCE, figures


def test_onnx_interface_and_metadata(exports):
    model, directory, manifest = exports["vit"]
    for tower, (name, elem_type, shape) in {
        "image_encoder": ("images", onnx.TensorProto.FLOAT, [32, 32, 3]),
        "text_encoder": ("token_ids", onnx.TensorProto.INT32, [77]),
    }.items():
        proto = onnx.load(os.path.join(directory, f"{tower}.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        (graph_input,) = proto.graph.input
        assert graph_input.name == name
        assert graph_input.type.tensor_type.elem_type == elem_type
        dims = graph_input.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        assert [d.dim_value for d in dims[1:]] == shape
        assert [o.name for o in proto.graph.output] == ["embeddings", "normalized_embeddings"]
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["tower"] == tower
        assert int(meta["image_size"]) == 32 and int(meta["context_length"]) == 77
        assert int(meta["format_version"]) == FORMAT_VERSION
        assert float(meta["logit_scale"]) == pytest.approx(manifest["logit_scale"])
        assert json.loads(meta["mean"]) == manifest["image"]["mean"]
        embedded = json.loads(meta["keras_clip.manifest"])
        assert embedded["embed_dim"] == 64 and embedded["text"]["end_token_id"] == 49407


@pytest.mark.parametrize("family,tower", CASES)
def test_fp16_cosine_and_finite(exports, family, tower):
    model, directory, manifest = exports[family]
    path = os.path.join(directory, manifest["onnx"][tower]["fp16"])
    figures = onnx_parity(model, path, tower, batch_sizes=(1, 5, 8))
    print(f"fp16 {family} {tower}: {figures}")
    assert figures["finite"] and figures["min_cosine"] >= 0.999, figures
    fp32 = os.path.join(directory, manifest["onnx"][tower]["fp32"])
    assert os.path.getsize(path) < 0.65 * os.path.getsize(fp32)


@pytest.mark.parametrize("tower", ["image_encoder", "text_encoder"])
def test_dynamic_int8_cosine(exports, tower, tmp_path):
    """Dynamic int8 (`--int8`); static int8 is tests/test_quantize_static.py's."""
    model, directory, manifest = exports["vit"]
    path = to_int8(os.path.join(directory, manifest["onnx"][tower]["fp32"]),
                   str(tmp_path / f"{tower}.int8.onnx"), method="dynamic")
    assert "DynamicQuantizeLinear" in [node.op_type for node in onnx.load(path).graph.node]
    figures = onnx_parity(model, path, tower, batch_sizes=(5,))
    print(f"int8 vit {tower} (random weights): {figures}")
    assert figures["finite"] and figures["min_cosine"] >= 0.99, figures


def test_manifest_contents(exports):
    model, directory, manifest = exports["vit"]
    on_disk = read_manifest(directory)
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["format_version"] == FORMAT_VERSION
    assert on_disk["image"]["size"] == 32 and on_disk["embed_dim"] == 64
    assert on_disk["image"]["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert on_disk["image"]["std"] == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    assert "bicubic" in on_disk["image"]["resize"].lower()
    text = on_disk["text"]
    assert (text["context_length"], text["start_token_id"], text["end_token_id"]) == (77, 49406, 49407)
    assert on_disk["logit_scale"] == pytest.approx(float(model.logit_scale), rel=1e-6)
    assert on_disk["exporter"]["backend"] == keras.backend.backend()
    assert {"keras", "onnx", "onnxruntime"} <= set(on_disk["exporter"]["versions"])
    files = on_disk["files"]
    expected = {"image_encoder.onnx", "text_encoder.onnx", "image_encoder.fp16.onnx",
                "image_encoder.int8.onnx", "bpe_simple_vocab_16e6.txt.gz",
                "image_encoder/saved_model.pb", "text_encoder/saved_model.pb"}
    assert expected <= set(files)
    for name, entry in files.items():
        assert sha256_file(os.path.join(directory, name)) == entry["sha256"], name
        assert os.path.getsize(os.path.join(directory, name)) == entry["bytes"]


def test_token_id_text_saved_model_has_one_signature(exports):
    """The strings signature lives in text_encoder_strings/ (tests/test_saved_model_strings.py)."""
    _, directory, _ = exports["vit"]
    assert list(load_saved_model(os.path.join(directory, "text_encoder")).signatures) == ["serving_default"]


PLAIN_TF = textwrap.dedent(
    """
    import importlib.abc, sys
    import numpy as np

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow_text", "keras_hub", "keras_nlp"):
                raise ImportError("blocked " + name)

    sys.meta_path.insert(0, _Block())
    import tensorflow as tf

    directory, inputs, out = sys.argv[1:4]
    data = np.load(inputs)
    results = {}
    for tower, input_name in (("image_encoder", "images"), ("text_encoder", "token_ids")):
        signature = tf.saved_model.load(directory + "/" + tower).signatures["serving_default"]
        results[tower] = signature(**{input_name: tf.constant(data[tower])})["embeddings"].numpy()
    assert "tensorflow_text" not in sys.modules
    np.savez(out, **results)
    """
)


def test_token_id_saved_models_load_without_tensorflow_text(exports, tmp_path):
    model, directory, _ = exports["vit"]
    inputs = {tower: sample_inputs(model, tower, 3, seed=9) for tower in ("image_encoder", "text_encoder")}
    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "plain_tf.py").write_text(PLAIN_TF)
    command = [sys.executable, str(tmp_path / "plain_tf.py"), directory, str(tmp_path / "inputs.npz"),
               str(tmp_path / "out.npz")]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "out.npz")
    for tower, batch in inputs.items():
        figures = compare(keras_embeddings(model, tower, batch), outputs[tower])
        assert figures["relative"] <= TOLERANCE, (tower, figures)


def test_unknown_saved_model_name_is_rejected(exports, tmp_path):
    expected = r"Unknown SavedModel 'strings'; expected one of .*text_encoder_strings"
    with pytest.raises(ValueError, match=expected):
        export_saved_model(exports["vit"][0], "strings", str(tmp_path / "x"))
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------ bad input
def _edge():
    if EXPORT_ROOT not in sys.path:
        sys.path.insert(0, EXPORT_ROOT)
    import clip_edge

    return clip_edge


def test_edge_rejects_wrong_image_shape_and_non_string_caption(exports):
    edge = _edge().ClipEdge(exports["vit"][1])
    with pytest.raises(ValueError, match=r"\(batch, 32, 32, 3\).*received shape \(2, 48, 48, 3\)"):
        edge.encode_pixels(np.zeros((2, 48, 48, 3), np.float32))
    with pytest.raises(ValueError, match=r"received shape \(1, 32, 32, 4\)"):
        edge.encode_pixels(np.zeros((1, 32, 32, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*received \(8, 8, 5\)"):
        edge.encode_images([np.zeros((8, 8, 5), np.uint8)])
    with pytest.raises(ValueError, match="element 1 is int"):
        edge.encode_texts(["a cat", 3])


def test_onnx_runtime_rejects_wrong_image_size(exports):
    import onnxruntime as ort

    _, directory, _ = exports["vit"]
    session = ort.InferenceSession(os.path.join(directory, "image_encoder.onnx"))
    with pytest.raises(Exception, match="images"):
        session.run(None, {"images": np.zeros((1, 48, 48, 3), np.float32)})


def test_tampered_or_missing_file_is_rejected(exports, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exports["vit"][1], copy)
    with open(copy / "text_encoder.onnx", "r+b") as file:
        file.seek(100)
        byte = file.read(1)
        file.seek(100)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match="SHA-256 mismatch.*text_encoder.onnx"):
        _edge().ClipEdge(str(copy))
    os.remove(copy / "text_encoder.onnx")
    with pytest.raises(ValueError, match="Missing file.*text_encoder.onnx"):
        _edge().ClipEdge(str(copy))


def test_newer_manifest_format_is_rejected(exports, tmp_path):
    copy = tmp_path / "newer"
    os.makedirs(copy)
    with open(os.path.join(exports["vit"][1], "manifest.json")) as file:
        manifest = json.load(file)
    manifest["format_version"] = FORMAT_VERSION + 1
    with open(copy / "manifest.json", "w") as file:
        json.dump(manifest, file)
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}"):
        read_manifest(str(copy))
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}.*reads up to version"):
        _edge().ClipEdge(str(copy))


def test_manifest_lists_graphs_litert_strings_and_conformance(exports):
    _, directory, manifest = exports["vit"]
    assert manifest["graphs"] == {"text_tokenizer": "text_tokenizer.onnx",
                                  "image_preprocessor": "image_preprocessor.onnx",
                                  "image_bytes_preprocessor": "image_bytes_preprocessor.onnx"}
    assert manifest["litert"]["image_encoder"] == {
        "fp32": "image_encoder.tflite", "fp16": "image_encoder.fp16.tflite",
        "int8": "image_encoder.int8.tflite"}
    assert manifest["saved_model"]["text_encoder_strings"] == "text_encoder_strings"
    assert manifest["conformance"]["towers"] == ["image_encoder", "text_encoder"]
    assert manifest["conformance"]["thresholds"]["fp32"] == {"image": 0.999, "text": 0.9999}
    listed = set(manifest["files"])
    assert {"text_tokenizer.onnx", "image_preprocessor.onnx", "image_bytes_preprocessor.onnx",
            "image_encoder.tflite",
            "text_encoder.int8.tflite", "conformance.npz",
            "text_encoder_strings/saved_model.pb"} <= listed
    _, _, resnet = exports["resnet"]  # image tower only: no tokenizer graph, no text files
    assert resnet["graphs"] == {"image_preprocessor": "image_preprocessor.onnx",
                                "image_bytes_preprocessor": "image_bytes_preprocessor.onnx"}
    assert resnet["conformance"]["towers"] == ["image_encoder"]


def test_conformance_file_holds_keras_outputs(exports):
    model, directory, _ = exports["vit"]
    stored = np.load(os.path.join(directory, "conformance.npz"))
    captions = [str(c) for c in stored["captions"]]
    assert any(ord(ch) > 127 for c in captions for ch in c)  # non-ASCII captions included
    np.testing.assert_array_equal(stored["token_ids"], CLIPTokenizer()(captions))
    np.testing.assert_allclose(stored["text_embeddings"],
                               model.encode_text(stored["token_ids"]), atol=1e-5)
    images = [stored[f"image_{i}"] for i in range(int(stored["image_count"]))]
    assert len({image.shape for image in images}) == len(images) >= 3  # several sizes
    preprocess = keras_clip.ImagePreprocessor(model.image_size)
    pixels = np.concatenate([preprocess(image) for image in images])
    np.testing.assert_allclose(stored["image_embeddings"], model.encode_image(pixels), atol=1e-5)


def _cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_plain_onnxruntime_strings_and_raw_images_through_the_graphs(exports):
    """What any ORT client does: strings -> tokenizer graph -> text tower; a raw uint8
    image -> preprocessing graph -> image tower; equal to Keras on Python-preprocessed input."""
    import onnxruntime as ort
    import onnxruntime_extensions

    model, directory, _ = exports["vit"]
    options = ort.SessionOptions()
    options.register_custom_ops_library(onnxruntime_extensions.get_library_path())

    def session(name, opts=None):
        return ort.InferenceSession(os.path.join(directory, name), opts,
                                    providers=["CPUExecutionProvider"])

    captions = ["a photo of a cat", "\u201ccurly quotes\u201d &amp; caf\u00e9", "東京の夜景"]
    ids = session("text_tokenizer.onnx", options).run(
        None, {"texts": np.array(captions, dtype=object)})[0]
    np.testing.assert_array_equal(ids, CLIPTokenizer()(captions))
    text = session("text_encoder.onnx").run(["embeddings"], {"token_ids": ids})[0]
    assert _cosines(text, model.encode_text(CLIPTokenizer()(captions))).min() >= 0.9999
    rng = np.random.default_rng(0)
    preprocess_graph, image_tower = session("image_preprocessor.onnx"), session("image_encoder.onnx")
    for shape in ((45, 70, 3), (32, 32, 3), (200, 9, 3)):
        raw = rng.integers(0, 256, shape, dtype=np.uint8)
        pixels = preprocess_graph.run(["images"], {"image": raw})[0]
        embedding = image_tower.run(["embeddings"], {"images": pixels})[0]
        expected = model.encode_image(keras_clip.ImagePreprocessor(model.image_size)(raw))
        assert _cosines(embedding, expected).min() >= 0.999, shape


@pytest.mark.parametrize("variant,threshold", [("fp32", 0.9999), ("fp16", 0.999), ("int8", 0.99)])
def test_litert_files_written_by_export_towers(exports, variant, threshold):
    from keras_clip.export.litert import run_litert

    model, directory, manifest = exports["vit"]
    for tower in ("image_encoder", "text_encoder"):
        inputs = sample_inputs(model, tower, 3, seed=4)
        embeddings, _ = run_litert(os.path.join(directory, manifest["litert"][tower][variant]),
                                   inputs)
        expected = getattr(model, "encode_image" if tower == "image_encoder" else "encode_text")(
            inputs)
        assert _cosines(embeddings, expected).min() >= threshold, (tower, variant)


def test_export_argument_errors(exports, tmp_path):
    model = exports["vit"][0]
    with pytest.raises(ValueError, match="formats.*received"):
        export_towers(model, str(tmp_path), formats=("tflite",))
    with pytest.raises(ValueError, match="fp16/int8"):
        export_towers(model, str(tmp_path), formats=("saved_model",), fp16=True)
    with pytest.raises(ValueError, match="opset"):
        export_towers(model, str(tmp_path), formats=("onnx",), opset=13)
    with pytest.raises(ValueError, match="keras_clip.CLIP.*received"):
        export_towers(model.image_encoder, str(tmp_path))


# ----------------------------------------------------------------- full size
@pytest.mark.large
@pytest.mark.parametrize("preset", ["vit_b32", "rn50"])
def test_full_size_export_parity(preset, tmp_path):
    import time

    import keras_clip

    keras.utils.set_random_seed(0)
    model = keras_clip.from_preset(preset, weights=None)
    start = time.perf_counter()
    manifest = export_towers(model, str(tmp_path), fp16=True, int8=True, architecture=preset)
    report = {"seconds_total": round(time.perf_counter() - start, 1),
              "seconds": manifest["exporter"]["seconds"]}
    for tower, variants in manifest["onnx"].items():
        for variant, file in variants.items():
            figures = onnx_parity(model, str(tmp_path / file), tower)
            report[file] = {**figures, "MB": round(os.path.getsize(tmp_path / file) / 1e6, 1)}
            if variant == "fp32":
                assert figures["relative"] <= TOLERANCE, (file, figures)
            elif variant == "fp16":
                assert figures["finite"] and figures["min_cosine"] >= 0.999, (file, figures)
    for tower, folder in manifest["saved_model"].items():
        figures = saved_model_parity(model, str(tmp_path / folder), tower)
        report[folder + "/"] = figures
        assert figures["relative"] <= TOLERANCE, (folder, figures)
    print(json.dumps({preset: report}, indent=1))


def test_export_command_line(exports, tmp_path, capsys):
    from keras_clip.cli import main

    model = exports["vit"][0]
    preset = tmp_path / "tiny_preset"
    model.save_to_preset(str(preset))
    output = tmp_path / "cli_export"
    assert main(["export", str(preset), "--formats", "onnx", "--output", str(output), "--check",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = read_manifest(str(output))
    assert manifest["architecture"] == "tiny_preset"
    assert sorted(manifest["onnx"]) == ["image_encoder", "text_encoder"] and not manifest["saved_model"]
    for file, figures in summary["parity"].items():
        assert figures["relative"] <= TOLERANCE, (file, figures)
