"""The ResNet tower's internal layout: channels-first and channels-last agree and share weights."""

import keras
import numpy as np
import pytest

from keras_clip import layers as L
from keras_clip.models.modified_resnet import ModifiedResNetEncoder, default_data_format
from tests.conftest import TINY_RESNET


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def randomised(tower, seed=0):
    """`tower` with every variable random, BatchNorm statistics included (variance > 0)."""
    rng = np.random.default_rng(seed)
    for variable in tower.weights:
        values = rng.normal(scale=0.2, size=tuple(variable.shape))
        if variable.path.endswith("moving_variance") or variable.path.endswith("gamma"):
            values = 1.0 + np.abs(values)
        variable.assign(values.astype("float32"))
    return tower


SMALLEST = dict(TINY_RESNET, image_size=32)  # a 1x1 map at the attention pool


def tower(data_format, seed=None):
    encoder = ModifiedResNetEncoder(SMALLEST, embed_dim=32, data_format=data_format)
    return encoder if seed is None else randomised(encoder, seed)


IMAGES = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")


def test_channels_first_and_channels_last_give_equal_outputs():
    last = tower("channels_last", seed=0)
    first = tower("channels_first")
    first.set_weights(last.get_weights())
    # Moving statistics, then batch statistics: over 2 images x a 1x1 map in the
    # last stage these amplify the reduction order's rounding (measured up to 1e-3
    # on TensorFlow and JAX); a wrong BatchNorm axis is off by O(1).
    for training, tolerance in ((False, 1e-4), (True, 5e-3)):
        expected = to_numpy(last(IMAGES, training=training))
        assert np.abs(expected).max() > 0.1  # not a degenerate comparison
        np.testing.assert_allclose(to_numpy(first(IMAGES, training=training)), expected,
                                   rtol=tolerance, atol=tolerance,
                                   err_msg=f"training={training}")


def test_weights_interchange_through_a_weights_file(tmp_path):
    last, first = tower("channels_last", seed=2), tower("channels_first")
    assert [(v.path, tuple(v.shape)) for v in last.weights] == [
        (v.path, tuple(v.shape)) for v in first.weights
    ]
    path = str(tmp_path / "rn.weights.h5")
    last.save_weights(path)
    first.load_weights(path)
    for a, b in zip(last.weights, first.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    np.testing.assert_allclose(to_numpy(first(IMAGES)), to_numpy(last(IMAGES)),
                               rtol=1e-4, atol=1e-4)


def test_layout_defaults_per_backend_and_round_trips():
    expected = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    assert default_data_format() == expected
    automatic = tower(None)
    assert automatic.layout == expected and automatic.get_config()["data_format"] is None
    chosen = ModifiedResNetEncoder.from_config(tower("channels_first").get_config())
    assert chosen.layout == "channels_first"
    assert chosen.get_layer("layer1_0").data_format == "channels_first"


def test_layers_in_channels_first_match_channels_last():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(2, 4, 4, 16)).astype("float32")
    nchw = np.ascontiguousarray(features.transpose(0, 3, 1, 2))
    block_last = L.Bottleneck(4, stride=2)
    block_first = L.Bottleneck(4, stride=2, data_format="channels_first")
    expected = to_numpy(block_last(features))
    block_first(nchw)
    block_first.set_weights(block_last.get_weights())
    np.testing.assert_allclose(to_numpy(block_first(nchw)).transpose(0, 2, 3, 1), expected,
                               rtol=1e-5, atol=1e-5)
    pool_last = L.AttentionPool2d(4, 2, 6)
    pool_first = L.AttentionPool2d(4, 2, 6, data_format="channels_first")
    expected = to_numpy(pool_last(features))
    pool_first(nchw)
    pool_first.set_weights(pool_last.get_weights())
    np.testing.assert_allclose(to_numpy(pool_first(nchw)), expected, rtol=1e-5, atol=1e-5)


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="`data_format` must be 'channels_last' or "
                                         "'channels_first', received 'nhwc'"):
        tower("nhwc")
    with pytest.raises(ValueError, match="received 'NCHW'"):
        L.Bottleneck(4, data_format="NCHW")
    with pytest.raises(ValueError, match="Expected a 2x2 feature map"):
        L.AttentionPool2d(2, 2, 4, data_format="channels_first")(np.ones((1, 8, 3, 3), "float32"))
