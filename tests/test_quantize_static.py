"""Static (calibrated, QDQ, per-channel) int8 ONNX towers: accuracy, format, manifest, CLI."""

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from keras_clip.cli import main
from keras_clip.export import export_towers, read_manifest
from keras_clip.export.calibration import GENERATED_SEEDS, folder_images
from keras_clip.export.conformance import conformance_images
from keras_clip.export.parity import onnx_parity
from keras_clip.export.quantize import to_int8
from keras_clip.preprocessing.eager import preprocess_numpy


@pytest.fixture(scope="module")
def static_export(tiny_export):
    """The session's tiny export (tests/conftest.py): its int8 ONNX towers are static."""
    return tiny_export


def _initializers(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


def _input_scale(path):
    """Scale of the first QuantizeLinear downstream of the graph input `images`."""
    model = onnx.load(path)
    values = _initializers(path)
    seen, frontier = {"images"}, ["images"]
    while frontier:  # through float ops (Transpose, Reshape) to the first QuantizeLinear
        name = frontier.pop(0)
        for node in (n for n in model.graph.node if name in n.input):
            if node.op_type == "QuantizeLinear":
                return float(values[node.input[1]])
            frontier += [out for out in node.output if out not in seen]
            seen.update(node.output)
    raise AssertionError("no QuantizeLinear after the input")


@pytest.mark.parametrize("tower", ["image_encoder", "text_encoder"])
def test_static_int8_cosine_to_keras(static_export, tower):
    model, folder, manifest = static_export
    assert manifest["onnx"][tower]["int8"] == f"{tower}.int8.onnx"
    figures = onnx_parity(model, os.path.join(folder, manifest["onnx"][tower]["int8"]), tower,
                          batch_sizes=(5,), seed=11)  # inputs unlike the calibration set
    print(f"static int8 tiny vit {tower} (random weights): {figures}")
    assert figures["finite"] and figures["min_cosine"] >= 0.99, figures


def test_static_int8_is_qdq_with_per_channel_int8_weights(static_export):
    _, folder, _ = static_export
    model = onnx.load(os.path.join(folder, "image_encoder.int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    values = _initializers(os.path.join(folder, "image_encoder.int8.onnx"))
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
               and values.get(n.input[0]) is not None and values[n.input[0]].dtype == np.int8
               and values[n.input[0]].ndim >= 2]
    assert weights, "no int8 weight initializers"
    assert all(values[n.input[1]].size > 1 for n in weights)  # one scale per output channel
    for name in ("MatMul", "Conv"):  # every such op with a constant weight reads int8
        for node in (n for n in model.graph.node if n.op_type == name):
            assert node.input[1] not in values, f"{node.name} kept a float weight"


def test_manifest_records_the_int8_method_and_clip_edge_verifies(static_export):
    from clip_edge import ClipEdge

    _, folder, _ = static_export
    assert read_manifest(folder)["int8_method"] == {"onnx": "static", "litert": "dynamic"}
    edge = ClipEdge(folder, precision="int8")
    result = edge.verify()
    print("\n".join(result.lines()))
    assert result.passed, result.lines()


def test_calibration_ranges_come_from_the_calibration_images(static_export, tmp_path):
    _, folder, _ = static_export
    source = os.path.join(folder, "image_encoder.onnx")
    generated = preprocess_numpy([i for s in GENERATED_SEEDS for i in conformance_images(s)], 32)
    scale = _input_scale(os.path.join(folder, "image_encoder.int8.onnx"))
    low, high = min(generated.min(), 0), max(generated.max(), 0)  # the range always holds 0
    assert scale == pytest.approx((high - low) / 255, rel=1e-5)

    images = tmp_path / "calibration"
    images.mkdir()
    dark = np.zeros((40, 50, 3), np.uint8)
    dark[::2] = 60
    Image.fromarray(dark).save(images / "a.png")
    Image.fromarray(np.full((33, 33, 3), 30, np.uint8)).save(images / "b.jpg")
    (images / "notes.txt").write_text("not an image")
    target = str(tmp_path / "folder.int8.onnx")
    to_int8(source, target, method="static", calibration_images=str(images))
    pixels = preprocess_numpy(folder_images(str(images)), 32)
    low, high = min(pixels.min(), 0), max(pixels.max(), 0)
    assert _input_scale(target) == pytest.approx((high - low) / 255, rel=1e-5)


def test_bad_int8_arguments(static_export, tmp_path):
    model, folder, _ = static_export
    source = os.path.join(folder, "image_encoder.onnx")
    with pytest.raises(ValueError, match=r"int8 method must be one of \('dynamic', 'static'\)"):
        to_int8(source, str(tmp_path / "x.onnx"), method="static8")
    with pytest.raises(OSError, match="is not a folder"):
        to_int8(source, str(tmp_path / "x.onnx"), "static", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        to_int8(source, str(tmp_path / "x.onnx"), "static", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="`int8` must be False, True or one of"):
        export_towers(model, str(tmp_path / "out"), formats=("onnx",), int8="int4")


def test_export_command_int8_flags(static_export, tmp_path, capsys):
    model, _, _ = static_export
    preset = str(tmp_path / "preset")
    model.save_to_preset(preset)
    out = str(tmp_path / "out")
    assert main(["export", preset, "-o", out, "--int8", "--calibration-images",
                 str(tmp_path)]) == 2
    assert "--calibration-images needs --int8 static." in capsys.readouterr().err
    assert main(["export", preset, "-o", out, "--int8", "static", "--calibration-images",
                 str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", preset, "-o", out, "--int8", "int4"])
    assert exit_info.value.code == 2
    assert not os.path.exists(out)
