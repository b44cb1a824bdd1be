"""Contrastive training through model.fit on every backend: metrics, temperature clip,
AdamW exclusions and schedule, mixed precision, gradient checkpointing."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_clip import CLIP
from keras_clip.losses import clip_loss
from keras_clip.training import build_optimizer, no_decay_variable_paths
from keras_clip.training.optimizers import cosine_schedule
from tests.conftest import tiny_config

METRICS = {"loss", "i2t_accuracy", "t2i_accuracy", "logit_scale"}


def _batch(n=16, seed=0, vocab=1000, image_size=32):
    rng = np.random.default_rng(seed)
    return {
        "images": rng.normal(size=(n, image_size, image_size, 3)).astype("float32"),
        "token_ids": rng.integers(1, vocab, size=(n, 77)).astype("int32"),
    }


def _model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return CLIP(tiny_config("vit"), **kwargs)


def _numpy_weights(model):
    return [ops.convert_to_numpy(w).astype("float32") for w in model.weights]


def test_fit_and_evaluate_report_contrastive_metrics():
    model = _model()
    model.compile(optimizer=keras.optimizers.AdamW(2e-3))
    data = _batch()
    history = model.fit(data, batch_size=8, epochs=3, verbose=0)
    assert METRICS <= set(history.history)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    result = model.evaluate(data, batch_size=16, verbose=0, return_dict=True)
    assert METRICS <= set(result)
    expected = clip_loss(model.encode_image(data["images"]),
                         model.encode_text(data["token_ids"]), model.logit_scale)
    assert result["loss"] == pytest.approx(float(ops.convert_to_numpy(expected)), rel=1e-4)
    assert result["logit_scale"] == pytest.approx(
        float(ops.convert_to_numpy(model.logit_scale)), rel=1e-5)
    assert 0.0 <= result["i2t_accuracy"] <= 1.0 and 0.0 <= result["t2i_accuracy"] <= 1.0


def test_fit_on_tf_data_synthetic_shapes():
    tf = pytest.importorskip("tensorflow")
    from keras_clip import data

    del tf
    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config("vit", vocab_size=49408))
    model.compile(optimizer=build_optimizer(model, 1e-3, total_steps=2, warmup_steps=1))
    ds = data.SyntheticShapes(image_size=32, seed=0).as_tf_dataset(16, num_samples=32)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)  # a tf.data pipeline shuffles itself
    assert np.isfinite(history.history["loss"][0])


def test_temperature_scale_clipped_at_100_every_step():
    model = _model()
    variable = model.contrastive_logits.logit_scale
    variable.assign(math.log(1000.0))
    assert float(ops.convert_to_numpy(model.logit_scale)) == pytest.approx(100.0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    model.fit(_batch(8), batch_size=8, epochs=1, verbose=0)
    assert float(ops.convert_to_numpy(variable)) <= math.log(100.0) + 1e-6
    assert model.evaluate(_batch(8), verbose=0, return_dict=True)["logit_scale"] <= 100.0 + 1e-4


def test_temperature_scale_kept_at_least_1_every_step():
    model = _model()
    variable = model.contrastive_logits.logit_scale
    variable.assign(-3.0)  # scale exp(-3) ~ 0.05, below the lower bound of 1
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    model.fit(_batch(8), batch_size=8, epochs=1, verbose=0)
    assert float(ops.convert_to_numpy(variable)) == pytest.approx(0.0, abs=1e-6)
    assert float(ops.convert_to_numpy(model.logit_scale)) == pytest.approx(1.0, abs=1e-6)


def test_compute_loss_needs_embeddings_and_no_sample_weight():
    model = _model()
    with pytest.raises(ValueError, match="image_embeddings"):
        model.compute_loss(y_pred={"logits": np.zeros((2, 2), "float32")})
    outputs = model(_batch(2))
    with pytest.raises(ValueError, match="sample weights"):
        model.compute_loss(y_pred=outputs, sample_weight=np.ones(2, "float32"))


@pytest.mark.parametrize("vision", ["vit", "resnet"])
def test_weight_decay_follows_the_paper_and_open_clip(vision):
    """Decayed: every weight with >= 2 dimensions (attention, MLP and projection
    kernels, convolutions, token and positional embeddings). Not decayed: gains,
    biases, the class token and the temperature."""
    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config(vision))
    optimizer = build_optimizer(model, 1e-3, weight_decay=0.1)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    excluded = set(no_decay_variable_paths(model))
    assert decayed | excluded == {v.path for v in model.trainable_variables}
    assert not decayed & excluded
    assert decayed == {v.path for v in model.trainable_variables if len(v.shape) >= 2}

    def split(tower):  # (decayed, not decayed) paths inside one tower
        variables = tower.trainable_variables
        return ({v.path for v in variables if optimizer._use_weight_decay(v)},
                {v.path for v in variables if not optimizer._use_weight_decay(v)})

    text_decayed, text_kept = split(model.text_encoder)
    assert {"resblocks_0/attn/in_proj/kernel", "resblocks_0/attn/out_proj/kernel",
            "resblocks_0/c_fc/kernel", "resblocks_0/c_proj/kernel", "text_projection/kernel",
            "embeddings/token_embedding", "embeddings/positional_embedding"} <= text_decayed
    assert {"ln_final/gamma", "ln_final/beta", "resblocks_0/ln_1/gamma",
            "resblocks_0/attn/in_proj/bias", "resblocks_0/c_fc/bias"} <= text_kept
    image_decayed, image_kept = split(model.image_encoder)
    if vision == "vit":
        assert {"conv1/kernel", "embeddings/positional_embedding", "proj/kernel"} <= image_decayed
        assert {"embeddings/class_embedding", "ln_pre/gamma", "ln_post/beta"} <= image_kept
    else:
        assert {"conv1/kernel", "attnpool/positional_embedding", "attnpool/c_proj/kernel"} <= (
            image_decayed)
        assert {"bn1/gamma", "bn1/beta", "attnpool/c_proj/bias"} <= image_kept
    assert not optimizer._use_weight_decay(model.contrastive_logits.logit_scale)
    # Behaviour: with zero gradients Adam moves nothing, so only decay changes weights.
    # (Paths repeat across the two towers, so go by position.)
    variables = model.trainable_variables
    before = [ops.convert_to_numpy(v).copy() for v in variables]
    optimizer.apply([ops.zeros(v.shape, "float32") for v in variables], variables)
    for v, old in zip(variables, before):
        moved = not np.array_equal(old, ops.convert_to_numpy(v))
        assert moved == optimizer._use_weight_decay(v) or not np.any(old), v.path


def test_cosine_schedule_with_warmup_and_clipnorm():
    schedule = cosine_schedule(1e-3, total_steps=110, warmup_steps=10)
    values = [float(ops.convert_to_numpy(schedule(step))) for step in (0, 5, 10, 60, 110)]
    assert values[0] == pytest.approx(0.0, abs=1e-9)
    assert values[1] == pytest.approx(5e-4)
    assert values[2] == pytest.approx(1e-3)
    assert values[3] == pytest.approx(5e-4)  # half way through the cosine
    assert values[4] == pytest.approx(0.0, abs=1e-9)
    optimizer = build_optimizer(_model(), 1e-3, total_steps=110, warmup_steps=10,
                                global_clipnorm=1.0)
    assert optimizer.global_clipnorm == 1.0
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_schedule(1e-3, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        build_optimizer(_model(), 1e-3, warmup_steps=5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_without_nan(policy):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model()
        model.compile(optimizer=build_optimizer(model, 1e-3))
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert "16" in str(model.image_encoder.get_layer("conv1").compute_dtype)
        try:
            history = model.fit(_batch(16), batch_size=8, epochs=2, verbose=0)
        except ValueError as error:  # JAX's CPU backend lacks float16 x float16 -> float32 dots
            if "not supported by dot_general on CPU" in str(error):
                pytest.skip(f"jax CPU cannot run this float16 op: {error}".splitlines()[0])
            raise
        assert np.all(np.isfinite(history.history["loss"]))
        for weight in model.trainable_variables:
            assert weight.dtype == "float32"
            assert np.all(np.isfinite(ops.convert_to_numpy(weight))), weight.path
        outputs = model(_batch(4))
        assert "float32" in str(outputs["logits_per_image"].dtype)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_remat_gives_the_same_step_and_serialises():
    plain = _model()
    remat = CLIP(tiny_config("vit"), remat=True)
    remat.set_weights(plain.get_weights())
    block = remat.image_encoder.get_layer("resblocks_0")
    assert block._remat_mode is not None and block._remat_mode.mode == "list_of_layers"
    for model in (plain, remat):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(_batch(8), batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(_numpy_weights(plain), _numpy_weights(remat)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert remat.get_config()["remat"] is True
    with pytest.raises(ValueError, match="remat"):
        CLIP(tiny_config("vit"), remat="sometimes")


def test_training_script_data_follows_the_models_preprocessing(tmp_path):
    """`keras-clip train --csv` crops normalise with the weights' mean/std (0.5 for
    vit_l14_laion2b), not OpenAI's for every model."""
    import dataclasses

    from keras_clip import data
    from keras_clip.config import PreprocessingConfig
    from keras_clip.preprocessing import MEAN, STD
    from keras_clip.training.script import build_dataset, parse_args

    table = data.write_csv(str(tmp_path), 8, image_size=48)
    args = parse_args(["--preset", "vit_b32", "--csv", table, "--batch-size", "4",
                       "--steps-per-epoch", "1",
                       "--seed", "0", "--output-dir", str(tmp_path / "run")])
    openai = tiny_config("vit")
    half = dataclasses.replace(openai, preprocessing=PreprocessingConfig(mean=(0.5,) * 3,
                                                                         std=(0.5,) * 3))

    def first_images(config):
        dataset, _ = build_dataset(args, config)
        return next(iter(dataset))["images"].numpy()

    pixels = first_images(openai) * np.asarray(STD, np.float32) + np.asarray(MEAN, np.float32)
    np.testing.assert_allclose(first_images(half), (pixels - 0.5) / 0.5, atol=1e-5)
