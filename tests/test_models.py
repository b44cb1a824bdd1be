"""CLIP model: shapes, serialization round trips, and clear errors on bad input."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
from keras import ops

import keras_clip
from keras_clip.presets.openai_checkpoint import load_state_dict, state_dict_from_model
from tests.conftest import tiny_config


def inputs_for(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    size = model.image_size
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    token_ids = rng.integers(1, 998, size=(batch, 77)).astype("int32")
    token_ids[:, 5] = 999  # end token: the highest id
    return images, token_ids


def test_call_returns_embeddings_and_scaled_cosine_logits(tiny_clip_config):
    model = keras_clip.CLIP(tiny_clip_config)
    images, token_ids = inputs_for(model, batch=3)
    out = {k: ops.convert_to_numpy(v) for k, v in model({"images": images, "token_ids": token_ids}).items()}
    assert out["image_embeddings"].shape == (3, 32) and out["text_embeddings"].shape == (3, 32)
    img = out["image_embeddings"] / np.linalg.norm(out["image_embeddings"], axis=-1, keepdims=True)
    txt = out["text_embeddings"] / np.linalg.norm(out["text_embeddings"], axis=-1, keepdims=True)
    np.testing.assert_allclose(out["logits_per_image"], (img @ txt.T) / 0.07, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.encode_image(images)), out["image_embeddings"], atol=1e-5
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.encode_text(token_ids)), out["text_embeddings"], atol=1e-5
    )


def test_towers_are_standalone_keras_models(tiny_clip_config):
    model = keras_clip.CLIP(tiny_clip_config)
    assert isinstance(model.image_encoder, keras.Model)
    assert model.image_encoder.output_shape == (None, 32)
    assert model.text_encoder.input_shape == (None, 77)


def test_keras_file_round_trip(tiny_clip_config, tmp_path):
    model = keras_clip.CLIP(tiny_clip_config)
    images, token_ids = inputs_for(model)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, keras_clip.CLIP) and restored.config == model.config
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored.encode_image(images)),
        ops.convert_to_numpy(model.encode_image(images)),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored.encode_text(token_ids)),
        ops.convert_to_numpy(model.encode_text(token_ids)),
        atol=1e-6,
    )


def test_get_config_round_trip_for_model_and_towers(tiny_clip_config):
    model = keras_clip.CLIP(tiny_clip_config)
    clone = keras_clip.CLIP.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    for tower in (model.image_encoder, model.text_encoder):
        rebuilt = tower.__class__.from_config(tower.get_config())
        assert rebuilt.get_config() == tower.get_config()
        assert [w.shape for w in rebuilt.weights] == [w.shape for w in tower.weights]


@pytest.mark.parametrize("tower_name", ["image_encoder", "text_encoder"])
def test_tower_config_with_a_misspelled_key_raises(tiny_clip_config, tower_name):
    tower = getattr(keras_clip.CLIP(tiny_clip_config), tower_name)
    config = tower.get_config()
    config[tower.section]["widht"] = 64
    with pytest.raises(ValueError, match="widht"):
        tower.__class__.from_config(config)


def test_clip_config_with_a_misspelled_key_raises(tiny_clip_config):
    config = keras_clip.CLIP(tiny_clip_config).get_config()
    config["config"]["text"]["layres"] = 2
    with pytest.raises(ValueError, match="layres"):
        keras_clip.CLIP.from_config(config)


def test_keras_file_with_a_misspelled_config_key_raises(tmp_path):
    path = tmp_path / "image.keras"
    keras_clip.CLIP(tiny_config("vit")).image_encoder.save(path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["vision"]["patch_szie"] = 8
    files["config.json"] = json.dumps(config).encode()
    edited = tmp_path / "edited.keras"
    with zipfile.ZipFile(edited, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="patch_szie"):
        keras.saving.load_model(edited)


def test_tower_saves_alone(tmp_path):
    model = keras_clip.CLIP(tiny_config("resnet"))
    images, _ = inputs_for(model)
    model.image_encoder.save(tmp_path / "image.keras")
    tower = keras.saving.load_model(tmp_path / "image.keras")
    np.testing.assert_allclose(
        ops.convert_to_numpy(tower(images)),
        ops.convert_to_numpy(model.encode_image(images)),
        atol=1e-6,
    )


def test_save_to_preset_round_trip(tiny_clip_config, tmp_path):
    model = keras_clip.CLIP(tiny_clip_config)
    images, token_ids = inputs_for(model)
    model.save_to_preset(tmp_path / "preset")
    restored = keras_clip.from_preset(str(tmp_path / "preset"))
    assert restored.config == model.config
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored.encode_text(token_ids)),
        ops.convert_to_numpy(model.encode_text(token_ids)),
        atol=1e-6,
    )


def test_bfloat16_policy_stays_close_to_float32():
    config = tiny_config("vit")
    model = keras_clip.CLIP(config)
    fast = keras_clip.CLIP(config, dtype="bfloat16")
    fast.set_weights(model.get_weights())
    images, _ = inputs_for(model, batch=4)
    a = ops.convert_to_numpy(model.encode_image(images)).astype("float64")
    b = ops.convert_to_numpy(ops.cast(fast.encode_image(images), "float32")).astype("float64")
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cosine.min() > 0.99


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF's encode path")
def test_tensorflow_bfloat16_towers_skip_xla():
    # XLA:CPU's bf16 matmul has no oneDNN/AMX path; TF's graph path has (3-4x on AMX).
    from keras_clip.models.clip import _xla_function

    model = keras_clip.CLIP(tiny_config("vit"), dtype="bfloat16")
    assert _xla_function(model.image_encoder)._jit_compile is False
    assert _xla_function(keras_clip.CLIP(tiny_config("vit")).image_encoder)._jit_compile


@pytest.mark.parametrize("name", ["vit_b32", "rn50"])
def test_full_size_presets_build_without_weights(name):
    model = keras_clip.from_preset(name, weights=None)
    assert model.image_encoder.output_shape == (None, model.config.embed_dim)
    assert model.config.name == name


@pytest.mark.large
@pytest.mark.parametrize("name", keras_clip.list_presets())
def test_every_preset_builds_and_runs(name):
    model = keras_clip.from_preset(name, weights=None)
    images = np.zeros((1, model.image_size, model.image_size, 3), "float32")
    assert ops.convert_to_numpy(model.encode_image(images)).shape == (1, model.config.embed_dim)


# ---- bad input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return keras_clip.CLIP(tiny_config("vit"))


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((32, 32, 3), "float32"), r"rank 3 shape \(32, 32, 3\)"),
        (np.zeros((1, 32, 32, 4), "float32"), "received 4 channels"),
        (np.zeros((1, 3, 32, 32), "float32"), "received 32 channels"),
        (np.zeros((1, 64, 64, 3), "float32"), r"\(batch, 32, 32, 3\), received \(1, 64, 64, 3\)"),
        (np.zeros((1, 32, 32, 3), "uint8"), "received dtype uint8"),
    ],
)
def test_bad_images_are_rejected(tiny_model, images, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.encode_image(images)


@pytest.mark.parametrize(
    "token_ids, message",
    [
        (np.zeros((1, 76), "int32"), r"shape \(batch, 77\), received \(1, 76\)"),
        (np.zeros((1, 77), "float32"), "integer token ids, received dtype float32"),
        (np.full((1, 77), 1000, "int32"), r"\[0, 1000\), received values in \[1000, 1000\]"),
        (np.full((1, 77), -1, "int32"), r"received values in \[-1, -1\]"),
    ],
)
def test_bad_token_ids_are_rejected(tiny_model, token_ids, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.encode_text(token_ids)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"not a built-in name \(rn101, rn50, "):
        keras_clip.from_preset("vit_b99", weights=None)
    with pytest.raises(ValueError, match="not a built-in name .*vit_b32.* no such file"):
        keras_clip.from_preset("no/such/checkpoint.safetensors")


def test_checkpoint_with_missing_extra_or_misshaped_tensors_is_named():
    model = keras_clip.CLIP(tiny_config("vit"))
    state_dict = state_dict_from_model(model)
    broken = dict(state_dict)
    del broken["visual.ln_post.bias"]
    broken["visual.extra_head.weight"] = np.zeros(3, "float32")
    broken["text_projection"] = np.zeros((64, 16), "float32")
    with pytest.raises(ValueError) as error:
        load_state_dict(model, broken)
    message = str(error.value)
    assert "missing tensors ['visual.ln_post.bias']" in message
    assert "unexpected tensors ['visual.extra_head.weight']" in message
    assert "text_projection: checkpoint (64, 16)" in message and "expects (64, 32)" in message


def test_state_dict_round_trip_is_exact():
    source = keras_clip.CLIP(tiny_config("resnet"))
    target = keras_clip.CLIP(tiny_config("resnet"))
    load_state_dict(target, state_dict_from_model(source))
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_truncated_checkpoint_file_is_a_clear_error(tmp_path):
    from safetensors.numpy import save_file

    path = str(tmp_path / "clip.safetensors")
    save_file(state_dict_from_model(keras_clip.CLIP(tiny_config("vit"))), path)
    with open(path, "rb+") as file:
        file.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        keras_clip.from_preset(path)
