"""SigLIP's sigmoid loss: open_clip's `SigLipLoss` values and gradients (golden file from
scripts/make_siglip_golden.py), the model option `loss="sigmoid"` and its initial values."""

import math
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_clip import CLIP
from keras_clip.losses import sigmoid_loss
from tests.conftest import tiny_config

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "siglip.npz")
CASES = ("init", "trained", "single")


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def _value_and_grads(fn, *args):
    """`fn(*args)` and its gradients w.r.t. every argument, on the suite's backend."""
    args = [ops.convert_to_tensor(np.asarray(a, "float32")) for a in args]
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, grads = jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(args)))))(*args)
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        grads = tape.gradient(value, args)
    else:
        args = [a.detach().requires_grad_() for a in args]
        value = fn(*args)
        value.backward()
        grads = [a.grad for a in args]
    return float(ops.convert_to_numpy(value)), [ops.convert_to_numpy(g) for g in grads]


@pytest.mark.parametrize("case", CASES)
def test_sigmoid_loss_and_gradients_equal_open_clip(golden, case):
    args = [golden[f"{case}_{key}"] for key in ("images", "texts", "scale", "bias")]
    value, grads = _value_and_grads(sigmoid_loss, *args)
    assert value == pytest.approx(float(golden[f"{case}_loss"]), rel=1e-5)
    for key, grad in zip(("images", "texts", "scale", "bias"), grads):
        expected = golden[f"{case}_grad_{key}"]
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_model_sigmoid_loss_uses_its_scale_and_bias(golden):
    model = CLIP(tiny_config("vit"), loss="sigmoid")
    # SigLIP's initial values (arXiv 2303.15343): t = ln 10, b = -10.
    assert float(ops.convert_to_numpy(model.logit_scale)) == pytest.approx(10.0, rel=1e-6)
    assert float(ops.convert_to_numpy(model.logit_bias)) == -10.0
    assert "logit_bias" in [w.name for w in model.trainable_weights]
    model.contrastive_logits.logit_scale.assign(math.log(float(golden["trained_scale"])))
    model.logit_bias_layer.logit_bias.assign(float(golden["trained_bias"]))
    y_pred = {"image_embeddings": golden["trained_images"].astype("float32"),
              "text_embeddings": golden["trained_texts"].astype("float32")}
    loss = model.compute_loss(y_pred=y_pred)
    assert float(ops.convert_to_numpy(loss)) == pytest.approx(
        float(golden["trained_loss"]), rel=1e-5)


def test_softmax_model_has_no_bias_and_config_round_trips():
    model = CLIP(tiny_config("vit"))
    assert model.logit_bias is None and model.contrastive_loss == "softmax"
    assert float(ops.convert_to_numpy(model.logit_scale)) == pytest.approx(1 / 0.07, rel=1e-6)
    sigmoid = CLIP(tiny_config("vit"), loss="sigmoid")
    assert CLIP.from_config(sigmoid.get_config()).contrastive_loss == "sigmoid"


def test_sigmoid_weights_round_trip_through_a_preset_folder(tmp_path):
    model = CLIP(tiny_config("vit"), loss="sigmoid")
    model.logit_bias_layer.logit_bias.assign(-3.5)
    model.save_to_preset(str(tmp_path))
    import keras_clip

    for loaded in (CLIP.from_preset_folder(str(tmp_path)), keras_clip.from_preset(str(tmp_path))):
        assert loaded.contrastive_loss == "sigmoid"  # the folder records its loss
        assert float(ops.convert_to_numpy(loaded.logit_bias)) == -3.5


def test_sigmoid_bias_round_trips_through_an_open_clip_file(tmp_path):
    from safetensors.numpy import load_file

    import keras_clip

    model = CLIP(tiny_config("vit"), loss="sigmoid")
    model.logit_bias_layer.logit_bias.assign(-3.5)
    path = str(tmp_path / "siglip.safetensors")
    model.save_open_clip(path)
    bias = load_file(path)["logit_bias"]  # open_clip's key, a 0-d tensor as its nn.Parameter
    assert bias.shape == () and float(bias) == -3.5
    loaded = keras_clip.from_preset(path)  # the key makes it a SigLIP model
    assert loaded.contrastive_loss == "sigmoid"
    assert float(ops.convert_to_numpy(loaded.logit_bias)) == -3.5
    assert "logit_bias" not in load_file(_saved(CLIP(tiny_config("vit")), tmp_path / "s.st"))
    with pytest.raises(ValueError, match=r"unexpected tensors \['logit_bias'\]"):
        keras_clip.from_preset(path, loss="softmax")


def _saved(model, path):
    path = str(path) + ".safetensors"
    model.save_open_clip(path)
    return path


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`loss` must be one of \('softmax', 'sigmoid'\), "
                                         r"received 'siglip'"):
        CLIP(tiny_config("vit"), loss="siglip")


@pytest.mark.large  # the default suite checks the bias trains in test_grad_cache's sigmoid step
def test_fit_with_sigmoid_loss_learns():
    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config("vit"), loss="sigmoid")
    model.compile(optimizer=keras.optimizers.AdamW(2e-3))
    rng = np.random.default_rng(0)
    data = {"images": rng.normal(size=(8, 32, 32, 3)).astype("float32"),
            "token_ids": rng.integers(1, 1000, size=(8, 77)).astype("int32")}
    history = model.fit(data, batch_size=8, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert float(ops.convert_to_numpy(model.logit_bias)) != -10.0  # the bias trains
