"""keras_clip.finetune: locked towers, LoRA, the zero-shot head, FLYP batches, WiSE-FT,
the shifted synthetic domain, `keras-clip finetune` and their clear errors."""

import keras
import numpy as np
import pytest

from keras_clip import CLIP, CLIPTokenizer, finetune
from keras_clip.cli import main
from keras_clip.data import SyntheticShapes
from keras_clip.evaluation import ZeroShotClassifier
from tests.conftest import tiny_config

FULL_VOCAB = 49408  # real CLIPTokenizer ids


def _batch(model, n=8, seed=0):
    rng = np.random.default_rng(seed)
    size = model.image_size
    return {"images": rng.normal(size=(n, size, size, 3)).astype("float32"),
            "token_ids": rng.integers(1, model.config.text.vocab_size, (n, 77)).astype("int32")}


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _embed(model, data):
    """Image and text embeddings of one eager forward pass (no compiled functions)."""
    outputs = model(data)
    return [keras.ops.convert_to_numpy(outputs[k]) for k in ("image_embeddings",
                                                              "text_embeddings")]


def _fit_step(model, data, learning_rate=1e-2):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    model.fit(data, batch_size=len(data["images"]), epochs=1, verbose=0)


# ------------------------------------------------------------------ lock
def test_locked_image_tower_is_bit_identical_after_a_fit_step_while_the_text_tower_changes():
    model = finetune.lock(CLIP(tiny_config("vit")), image=True, text=False)
    image_before = _values(model.image_encoder.weights)
    text_before = _values(model.text_encoder.weights)
    _fit_step(model, _batch(model))
    for before, after in zip(image_before, _values(model.image_encoder.weights)):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a)
               for b, a in zip(text_before, _values(model.text_encoder.weights)))


def test_unlocked_groups_leave_the_last_blocks_and_projection_trainable():
    model = CLIP(tiny_config("vit", layers=2))
    assert finetune.trainable_parameter_count(model) == model.count_params()
    finetune.lock(model, image=False, text=True, unlocked_groups=1)
    trainable = {v.path for v in model.text_encoder.trainable_weights}
    assert "resblocks_1/c_fc/kernel" in trainable and "text_projection/kernel" in trainable
    assert "ln_final/gamma" in trainable
    assert not any(path.startswith(("resblocks_0/", "embeddings/")) for path in trainable)
    finetune.lock(model, image=True, text=True)
    assert finetune.trainable_parameter_count(model) == 1  # the temperature


@pytest.mark.parametrize("freeze_batch_norm", [True, pytest.param(False, marks=pytest.mark.large)])
def test_locked_resnet_keeps_its_batchnorm_statistics(freeze_batch_norm):
    model = finetune.lock(CLIP(tiny_config("resnet")), freeze_batch_norm=freeze_batch_norm)
    batch_norm = model.image_encoder.get_layer("bn1")
    stats = _values([batch_norm.moving_mean, batch_norm.moving_variance])
    gamma = _values([batch_norm.gamma])
    _fit_step(model, _batch(model))
    after = _values([batch_norm.moving_mean, batch_norm.moving_variance])
    np.testing.assert_array_equal(gamma[0], _values([batch_norm.gamma])[0])
    if freeze_batch_norm:
        for before, now in zip(stats, after):
            np.testing.assert_array_equal(before, now)
    else:  # statistics follow the data, scale and offset stay
        assert not np.array_equal(stats[0], after[0])


# ------------------------------------------------------------------ LoRA
@pytest.mark.parametrize("vision", ["vit", pytest.param("resnet", marks=pytest.mark.large)])
def test_lora_starts_at_the_base_model_trains_only_adapters_saves_and_merges(vision, tmp_path):
    model = CLIP(tiny_config(vision))
    total = finetune.trainable_parameter_count(model)
    data = _batch(model)
    base = _embed(model, data)
    model.enable_lora(2)
    for before, now in zip(base, _embed(model, data)):
        np.testing.assert_array_equal(now, before)
    assert model.trainable_weights and all("lora_kernel" in v.path
                                           for v in model.trainable_weights)
    frozen = _values([v for v in model.weights if "lora_kernel" not in v.path])
    _fit_step(model, data, learning_rate=0.5)
    for before, after in zip(frozen, _values([v for v in model.weights
                                              if "lora_kernel" not in v.path])):
        np.testing.assert_array_equal(before, after)
    adapted = _embed(model, data)
    assert np.abs(adapted[0] - base[0]).max() > 1e-4  # the adapters learned something
    _check_reloads(model, data, adapted, tmp_path)
    model.merge_lora()
    assert not model.lora_enabled and not any("lora" in v.path for v in model.weights)
    for want, merged in zip(adapted, _embed(model, data)):
        np.testing.assert_allclose(merged, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert finetune.trainable_parameter_count(model) == total


def _check_reloads(model, data, expected, folder):
    """`.keras` files and preset folders give back the adapters, not merged kernels."""
    adapter = model.lora_layers[0]
    assert np.abs(keras.ops.convert_to_numpy(adapter.lora_kernel_b)).max() > 0
    model.save(folder / "model.keras")
    model.save_to_preset(folder / "preset")
    for loaded in (keras.saving.load_model(folder / "model.keras"),
                   CLIP.from_preset_folder(folder / "preset")):
        assert loaded.lora_config == model.lora_config
        for want, got in zip(expected, _embed(loaded, data)):
            np.testing.assert_array_equal(got, want)
        layer = loaded.lora_layers[0]
        for name in ("lora_kernel_a", "lora_kernel_b", "_kernel"):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(getattr(layer, name)),
                                          keras.ops.convert_to_numpy(getattr(adapter, name)))


# ------------------------------------------------------------------ zero-shot head
def test_zero_shot_head_reproduces_zero_shot_classifier_before_training(tmp_path):
    model = CLIP(tiny_config("vit", vocab_size=FULL_VOCAB))
    names = ["red circle", "blue star", "green square"]
    templates = ["a photo of a {}.", "a {}"]
    images = _batch(model, 6)["images"]
    classifier = finetune.build_classifier(model, names, templates=templates)
    expected = ZeroShotClassifier(model, names, templates=templates).logits(images)
    logits = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
    classifier.save(tmp_path / "classifier.keras")
    reloaded = keras.saving.load_model(tmp_path / "classifier.keras").get_layer("zero_shot_head")
    assert reloaded.class_names == names
    np.testing.assert_array_equal(*_values([reloaded.kernel,
                                            classifier.get_layer("zero_shot_head").kernel]))


# ------------------------------------------------------------------ FLYP
def test_flyp_batches_pair_each_image_with_a_prompt_of_its_class_from_distinct_classes():
    names = ["red circle", "blue star", "green square", "white cross"]
    labels = np.repeat(np.arange(4), 6)
    images = np.random.default_rng(0).normal(size=(24, 32, 32, 3)).astype("float32")
    images[:, 0, 0, 0] = np.arange(24)  # identifies the sample
    templates = ["a photo of a {}.", "a {}"]
    batches = finetune.FLYPBatches(images, labels, names, templates, batch_size=4, seed=1)
    tokenizer = CLIPTokenizer()
    prompts = {tuple(tokenizer([t.format(n)])[0]): n for n in names for t in templates}
    assert len(batches) == 6
    seen = []
    for index in range(len(batches)):
        batch = batches[index]
        rows = batch["images"][:, 0, 0, 0].astype(int)
        seen += list(rows)
        classes = [names[labels[r]] for r in rows]
        assert len(set(classes)) == 4  # no same-class false negatives
        assert [prompts[tuple(ids)] for ids in batch["token_ids"]] == classes
    assert sorted(seen) == list(range(24))  # each image once per epoch
    batches.on_epoch_end()
    assert not np.array_equal(batches[0]["images"], images[rows])


@pytest.mark.large
def test_flyp_fine_tuning_runs_with_the_clip_loss():
    model = CLIP(tiny_config("vit", vocab_size=FULL_VOCAB))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    batches = finetune.flyp_batches(model, images, np.arange(8) % 4,
                                    ["a", "b", "c", "d"], "a photo of a {}.", batch_size=4)
    before = _values(model.text_encoder.weights)
    model.compile(optimizer=keras.optimizers.SGD(1e-2))
    history = model.fit(batches, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = _values(model.text_encoder.weights)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))


# ------------------------------------------------------------------ WiSE-FT
def test_wise_ft_is_exact_at_zero_and_one_and_the_mean_at_one_half():
    keras.utils.set_random_seed(0)
    zero_shot = CLIP(tiny_config("vit"))
    fine_tuned = CLIP(tiny_config("vit"))
    a, b = _values(zero_shot.weights), _values(fine_tuned.weights)
    assert not np.array_equal(a[0], b[0])
    for alpha, expected in ((0, a), (1.0, b), (0.5, [(x.astype(np.float64) + y) / 2
                                                     for x, y in zip(a, b)])):
        mixed = finetune.wise_ft(zero_shot, fine_tuned, alpha)
        assert isinstance(mixed, CLIP) and mixed is not zero_shot
        for want, got in zip(expected, _values(mixed.weights)):
            np.testing.assert_array_equal(got, np.asarray(want, got.dtype))
    data = _batch(zero_shot, 2)
    np.testing.assert_array_equal(finetune.wise_ft(zero_shot, fine_tuned, 1).encode_image(
        data["images"]), fine_tuned.encode_image(data["images"]))


@pytest.mark.large
def test_wise_ft_sweep_reports_each_alpha_and_the_best():
    model = CLIP(tiny_config("vit", vocab_size=FULL_VOCAB))
    names = ["red circle", "blue star"]
    zero_shot = finetune.build_classifier(model, names, "a {}")
    fine_tuned = finetune.build_classifier(CLIP(tiny_config("vit", vocab_size=FULL_VOCAB)),
                                           names, "a {}")
    images = _batch(model, 8)["images"]
    labels = np.arange(8) % 2

    def accuracy(classifier):
        return float(np.mean(classifier.predict(images, verbose=0).argmax(1) == labels))

    sweep = finetune.wise_ft_sweep(zero_shot, fine_tuned, (images, labels), accuracy,
                                   alphas=(0, 0.5, 1))
    assert [row["alpha"] for row in sweep["table"]] == [0, 0.5, 1]
    assert sweep["table"][0]["in_distribution"] == accuracy(zero_shot)
    assert sweep["table"][2]["shifted"] == accuracy(fine_tuned)
    assert sweep["best_alpha"] in (0, 0.5, 1)


# ------------------------------------------------------------------ shifted synthetic domain
def test_textured_shift_draws_the_same_classes_in_another_domain():
    plain, shifted = SyntheticShapes(32, seed=3), SyntheticShapes(32, seed=3, shift="textured")
    assert shifted.classes == plain.classes and "shift='textured'" in repr(shifted)
    np.testing.assert_array_equal(SyntheticShapes(32, seed=3, shift=None).sample(4)[0],
                                  plain.sample(4)[0])  # the default domain is unchanged
    images, _, _ = shifted.sample(16)
    np.testing.assert_array_equal(images, SyntheticShapes(32, 3, shift="textured").sample(16)[0])
    # Bright backgrounds (corners) instead of dark ones.
    assert images[:, :3, :3].mean() > 90 > plain.sample(16)[0][:, :3, :3].mean()


# ------------------------------------------------------------------ bad input
def test_bad_input_raises_clear_value_errors():
    model = CLIP(tiny_config("vit"))
    with pytest.raises(ValueError, match=r"Unknown tower 'vision'; expected one of \('image'"):
        finetune.lock_tower(model, "vision")
    with pytest.raises(ValueError, match="`image` must be True or False"):
        finetune.lock(model, image="vision")
    with pytest.raises(ValueError, match=r"`unlocked_groups` must be an int in \[0, 1\]"):
        finetune.lock(model, unlocked_groups=2)
    with pytest.raises(ValueError, match="merge_lora\\(\\) needs LoRA adapters"):
        model.merge_lora()
    with pytest.raises(ValueError, match="`towers` must be a non-empty subset"):
        model.enable_lora(2, towers="vision")
    with pytest.raises(ValueError, match="`rank` must be a positive integer"):
        model.enable_lora(0)
    other = CLIP(tiny_config("vit", width=32))
    with pytest.raises(ValueError, match="first mismatching weight is "
                                         r"text_encoder/embeddings/token_embedding.* \(1000, 64\)"):
        finetune.wise_ft(model, other, 0.5)
    for alpha in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match=r"`alpha` must be a number in \[0, 1\]"):
            finetune.wise_ft(model, model, alpha)
    model.enable_lora(2)
    with pytest.raises(ValueError, match="LoRA is already enabled on this model"):
        model.enable_lora(2)
    with pytest.raises(ValueError, match="unmerged LoRA adapters; call merge_lora"):
        finetune.wise_ft(model, other, 0.5)
    with pytest.raises(ValueError, match="shift must be one of"):
        SyntheticShapes(32, shift="sketch")
    with pytest.raises(ValueError, match=r"`batch_size` must be an int in \[1, 2\]"):
        finetune.FLYPBatches(np.zeros((2, 8, 8, 3)), [0, 1], ["a", "b"], "a {}", 3)


def test_finetune_command_exits_2_with_one_line_on_bad_input(capsys, tmp_path):
    assert main(["finetune", "--method", "full", "--epochs", "0", "--output",
                 str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "keras-clip finetune: error: `epochs` must be a positive integer, received 0."
    assert main(["finetune", "--base", str(tmp_path / "missing"), "--output",
                 str(tmp_path)]) == 2
    assert "is not a preset folder" in capsys.readouterr().err
