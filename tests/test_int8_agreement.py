"""Static int8 keeps zero-shot predictions: the int8 ONNX towers' top-1 class against Keras'.

The agreement case (`large`) trains `keras-clip demo`'s model and holds static
int8 to the issue's bar, 99% zero-shot agreement with Keras. A tiny
random-weight model cannot stand in for it: its towers map every prompt (and
every shapes image) to nearly the same vector (median top-1 margin 0.01 on
JAX's initialisation), so its predictions flip under any int8 error (measured:
94% agreement on TensorFlow's initialisation, 30% on JAX's, with cosines to
Keras >= 0.997). The default case checks the calibration itself: ranges
merged across strides equal one pass over every batch.
"""

import os

import keras
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from keras_clip.export import export_towers, quantize
from keras_clip.export.quantize import to_int8
from keras_clip.models import CLIP
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def tiny_image_tower(tmp_path_factory):
    """The fp32 ONNX image tower of a tiny random-weight model."""
    keras.utils.set_random_seed(1)
    model = CLIP(tiny_config("vit", embed_dim=64, vocab_size=49408))
    folder = str(tmp_path_factory.mktemp("agreement") / "export")
    export_towers(model, folder, formats=("onnx",), towers=("image_encoder",))
    return os.path.join(folder, "image_encoder.onnx")


def test_ranges_merged_in_strides_equal_one_pass(tiny_image_tower, tmp_path, monkeypatch):
    written = []
    for name, stride in (("one_pass", lambda count, most=8: count),
                         ("per_batch", lambda count, most=8: 1)):  # 4 batches, 4 strides
        monkeypatch.setattr(quantize, "_stride", stride)
        written.append(str(tmp_path / f"{name}.onnx"))
        to_int8(tiny_image_tower, written[-1], method="static")
    one_pass, per_batch = ({i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
                           for path in written)
    assert one_pass.keys() == per_batch.keys()
    for name, value in one_pass.items():
        np.testing.assert_array_equal(value, per_batch[name], err_msg=name)


def test_stride_divides_the_batch_count():
    assert [quantize._stride(n) for n in (1, 4, 13, 64, 66)] == [1, 4, 1, 8, 6]


@pytest.mark.large
def test_static_int8_keeps_99_percent_agreement_on_the_demo_model(tmp_path):
    from keras_clip.demo import run_demo

    summary = run_demo(str(tmp_path / "demo"), verbose=0)
    figures = summary["edge_runtime"]["int8_static"]
    print(f"demo model, static int8 vs Keras: {figures}")
    assert figures["zero_shot_agreement"] >= 0.99, figures
    assert figures["image_cosine_min"] >= 0.99 and figures["text_cosine_min"] >= 0.99, figures
