"""Pixel-value rule (issue 10, defect 5): 16-bit images are scaled, not clipped;
NaN and values outside the rule are refused, on every preprocessing path.

Paths: eager (PIL-exact), in-graph (`center_crop_tf`, eagerly and in tf.data),
the `keras.ops` layer inside a model (eager call and `predict`, which jit-compiles
on JAX and TF), and clip_edge's Python preprocessing.
"""

import importlib
import io
import os
import struct
import sys
import zlib

import keras
import numpy as np
import pytest
from PIL import Image

import keras_clip
from keras_clip import preprocessing as pp
from keras_clip.preprocessing import rules

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export"))
edge = importlib.import_module("clip_edge.preprocess")  # the package exports a function of that name

SIZE = 16
RULE_ERROR = r"must (be finite and|hold values) in \[0, 1\]|\[0, 255\]|\[0, 65535\]"


def image8(channels=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = (27, 35) if channels == 1 else (27, 35, channels)
    return rng.integers(0, 256, shape).astype(np.uint8)


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png16_rgb(array):
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def graph(image):
    tf = pytest.importorskip("tensorflow")
    return pp.center_crop_tf(tf.constant(image), SIZE).numpy()[None]


def tf_data(image):
    tf = pytest.importorskip("tensorflow")

    def crop(x):
        return pp.center_crop_tf(x, SIZE)

    return next(iter(tf.data.Dataset.from_tensors(image).map(crop))).numpy()[None]


def layer_model(image):
    image = image[:, :, None] if image.ndim == 2 else image
    inputs = keras.Input(image.shape, dtype=str(image.dtype))
    return keras.Model(inputs, keras_clip.ImagePreprocessor(SIZE)(inputs)), image[None]


def layer_call(image):
    model, batch = layer_model(image)
    return keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(batch)))


def layer_predict(image):
    model, batch = layer_model(image)
    return model.predict(batch, verbose=0)


PATHS = {
    "eager": lambda im: pp.preprocess_numpy(im, SIZE),
    "graph": graph,
    "tf_data": tf_data,
    "layer_call": layer_call,
    "layer_predict": layer_predict,
    "edge": lambda im: edge.preprocess(im, SIZE),
}


# ------------------------------------------------------------- 16-bit data
def test_sixteen_to_eight_rounds_to_nearest():
    values = np.arange(65536, dtype=np.uint16)
    expected = np.floor(values / 257.0 + 0.5).astype(np.uint8)  # no ties: v / 257 is never k + 0.5
    np.testing.assert_array_equal(rules.sixteen_to_eight(values), expected)
    np.testing.assert_array_equal(edge.sixteen_to_eight(values), expected)
    assert edge.sixteen_to_eight(np.array([128, 129], np.uint16)).tolist() == [0, 1]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_uint16_array_equals_8bit_image(path, channels):
    """Content = 8-bit image * 257: the same output as the 8-bit image (before the
    fix 16-bit values were clipped to 255: means ~2 instead of ~0.2)."""
    eight = image8(channels)
    sixteen = eight.astype(np.uint16) * 257
    run = PATHS[path]
    np.testing.assert_allclose(run(sixteen), run(eight), rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", ["eager", "edge_pil", "edge_file"])
def test_16bit_grayscale_png_equals_8bit(path, tmp_path):
    eight = image8(1)
    png = Image.open(io.BytesIO(png_bytes(Image.fromarray(eight.astype(np.uint16) * 257))))
    assert png.mode == "I;16"
    reference = pp.preprocess_numpy(eight, SIZE)
    if path == "eager":
        out = keras_clip.ImagePreprocessor(SIZE)(png)
        assert abs(float(out.mean()) - float(reference.mean())) < 1e-6
    elif path == "edge_pil":
        out = edge.preprocess(png, SIZE)
    else:
        png.save(tmp_path / "gray16.png")
        out = edge.preprocess(str(tmp_path / "gray16.png"), SIZE)
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-6)


def test_16bit_png_in_tf_data_equals_8bit():
    tf = pytest.importorskip("tensorflow")
    eight = image8(1)
    data = png_bytes(Image.fromarray(eight.astype(np.uint16) * 257))

    def decode(raw):
        return pp.center_crop_tf(tf.io.decode_png(raw, dtype=tf.uint16), SIZE)

    out = next(iter(tf.data.Dataset.from_tensors(data).map(decode))).numpy()
    np.testing.assert_allclose(out[None], pp.preprocess_numpy(eight, SIZE), rtol=0, atol=1e-6)


def test_pil_16bit_modes():
    eight = image8(1)
    sixteen = eight.astype(np.uint16) * 257
    reference = pp.preprocess_numpy(eight, SIZE)
    big_endian = Image.frombytes("I;16B", eight.shape[::-1], sixteen.astype(">u2").tobytes())
    mode_i = Image.fromarray(sixteen.astype(np.int32))
    assert (big_endian.mode, mode_i.mode) == ("I;16B", "I")
    for image in (big_endian, mode_i):
        np.testing.assert_allclose(pp.preprocess_numpy(image, SIZE), reference, rtol=0, atol=1e-6)
        np.testing.assert_allclose(edge.preprocess(image, SIZE), reference, rtol=0, atol=1e-6)
    too_big = Image.fromarray(np.full((4, 4), 70000, np.int32))
    with pytest.raises(ValueError, match=r"mode I images are 16-bit .*\[0, 65535\]; received range \[70000"):
        pp.preprocess_numpy(too_big, SIZE)
    with pytest.raises(ValueError, match=r"mode I images are 16-bit .*\[0, 65535\]; received range \[70000"):
        edge.preprocess(too_big, SIZE)


def test_16bit_rgb_png_is_decoded_by_pillow_to_8bit():
    """Documented: Pillow opens 16-bit RGB PNGs as 8-bit RGB (the high byte)."""
    eight = image8(3)
    png = Image.open(io.BytesIO(png16_rgb(eight.astype(np.uint16) * 257)))
    assert png.mode == "RGB"
    reference = pp.preprocess_numpy(eight, SIZE)
    np.testing.assert_array_equal(pp.preprocess_numpy(png, SIZE), reference)
    np.testing.assert_array_equal(edge.preprocess(png, SIZE), reference)


@pytest.mark.parametrize("path", ["eager", "graph", "layer_call", "layer_predict"])
def test_uint16_off_grid_values_agree_across_paths(path):
    """Values that are not multiples of 257 round the same way on every path."""
    sixteen = np.random.default_rng(1).integers(0, 65536, (27, 35, 3)).astype(np.uint16)
    eight = np.floor(sixteen / 257.0 + 0.5).astype(np.uint8)  # round(v / 257), by hand
    np.testing.assert_allclose(PATHS[path](sixteen), PATHS[path](eight), rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", ["eager", "graph", "tf_data", "layer_call", "layer_predict"])
def test_other_integer_dtypes_hold_8bit_values(path):
    eight = image8(3)
    np.testing.assert_allclose(PATHS[path](eight.astype(np.int32)), PATHS[path](eight), rtol=0, atol=1e-6)


# --------------------------------------------------------- refused values
def nan_image():
    image = image8(3).astype(np.float32) / 255.0
    image[3, 4, 1] = np.nan
    return image


BAD = {
    "nan": (nan_image, "NaN or inf"),
    "inf": (lambda: np.full((27, 35, 3), np.inf, np.float32), "NaN or inf"),
    "float_0_255": (lambda: image8(3).astype(np.float32), r"\[0, 1\]"),
    "float_negative": (lambda: np.full((27, 35, 3), -0.25, np.float32), r"\[0, 1\]"),
    "int32_300": (lambda: np.full((27, 35, 3), 300, np.int32), r"\[0, 255\]"),
    "int32_negative": (lambda: np.full((27, 35, 3), -1, np.int32), r"\[0, 255\]"),
}


@pytest.mark.parametrize("path", ["eager", "graph", "layer_call"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_values_raise_value_error(path, case):
    make, match = BAD[case]
    with pytest.raises(ValueError, match=match):
        PATHS[path](make())


@pytest.mark.parametrize("path", ["tf_data", "layer_predict"])
@pytest.mark.parametrize("case", ["nan", "float_0_255", "int32_300"])
def test_bad_values_fail_inside_graphs(path, case):
    """tf.data and compiled `predict`: a failed assert (TF), a callback error (JAX)
    or a ValueError (torch), each carrying the rule's message."""
    make, _ = BAD[case]
    with pytest.raises(Exception, match=RULE_ERROR):
        PATHS[path](make())


@pytest.mark.parametrize("case", ["nan", "float_0_255", "int32_300"])
def test_edge_refuses_non_8_or_16_bit_data(case):
    make, _ = BAD[case]
    with pytest.raises(ValueError, match=r"must be uint8 \(or uint16 for 16-bit data\).*received dtype"):
        edge.preprocess(make(), SIZE)
    with pytest.raises(ValueError, match="mode F"):
        edge.preprocess(Image.fromarray(np.zeros((4, 4), np.float32)), SIZE)
