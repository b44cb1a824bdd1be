"""Faults in training: non-finite steps are skipped and counted, bad hyper-parameters
are refused, and `keras-clip train` never reports a diverged run as a success."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_clip import CLIP
from keras_clip.cli import main
from keras_clip.training import build_optimizer
from keras_clip.training.divergence import SkippedStepsGuard, TrainingDiverged
from keras_clip.training.optimizers import cosine_schedule
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CLIP = os.path.join(ROOT, "examples", "tiny_clip.json")


def _batch(model, n=4, seed=0, nan=False):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, model.image_size, model.image_size, 3)).astype("float32")
    if nan:
        images[0] = np.nan
    return {"images": images, "token_ids": rng.integers(1, 1000, size=(n, 77)).astype("int32")}


def _state(model):
    """Every weight (BatchNorm statistics included) and optimizer variable, as numpy."""
    variables = list(model.weights) + list(model.optimizer.variables)
    return [ops.convert_to_numpy(v).copy() for v in variables]


def _fit_one_step(model, batch):
    return model.fit(batch, batch_size=len(batch["images"]), epochs=1, verbose=0,
                     shuffle=False).history


@pytest.mark.parametrize("vision", ["vit", "resnet"])
def test_nan_image_step_changes_nothing_and_is_counted(vision):
    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config(vision))
    model.compile(optimizer=build_optimizer(model, 1e-3))  # compiled step: jit / tf.function
    _fit_one_step(model, _batch(model, seed=1))
    before = _state(model)
    history = _fit_one_step(model, _batch(model, seed=2, nan=True))
    assert history["skipped_steps"] == [1.0]
    assert math.isnan(history["loss"][0])  # no step applied: no loss, not a perfect 0
    for old, new in zip(before, _state(model)):  # weights, moments, iterations, BN stats
        assert np.array_equal(old, new)
    trained = [ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = _fit_one_step(model, _batch(model, seed=3))
    assert history["skipped_steps"] == [0.0] and np.isfinite(history["loss"][0])
    for old, weight in zip(trained, model.trainable_weights):
        new = ops.convert_to_numpy(weight)
        assert np.all(np.isfinite(new)) and not np.array_equal(old, new), weight.path


def test_loss_metric_leaves_out_the_skipped_step():
    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config("vit"))
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # weights never move
    clean, poisoned = _batch(model, seed=1), _batch(model, seed=2, nan=True)
    data = {key: np.concatenate([clean[key], poisoned[key]]) for key in clean}
    history = model.fit(data, batch_size=4, epochs=1, verbose=0, shuffle=False).history
    expected = model.evaluate(clean, batch_size=4, verbose=0, return_dict=True)["loss"]
    assert history["skipped_steps"] == [1.0]
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_loss_scaling_keeps_its_scale_on_a_nan_batch():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = CLIP(tiny_config("vit"))
        model.compile(optimizer=build_optimizer(model, 1e-3))
        try:
            _fit_one_step(model, _batch(model, seed=1))
        except ValueError as error:  # JAX's CPU backend lacks float16 x float16 -> float32 dots
            if "not supported by dot_general on CPU" in str(error):
                pytest.skip(f"jax CPU cannot run this float16 op: {error}".splitlines()[0])
            raise
        before = _state(model)
        history = _fit_one_step(model, _batch(model, seed=2, nan=True))
        assert history["skipped_steps"] == [1.0]
        for old, new in zip(before, _state(model)):  # the loss scale too
            assert np.array_equal(old, new)
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e-3, 0.0])
def test_schedule_and_optimizer_refuse_a_bad_learning_rate(value):
    with pytest.raises(ValueError, match=r"`learning_rate` must be a finite number > 0"):
        cosine_schedule(value, total_steps=10)
    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config("vit"))
    with pytest.raises(ValueError, match="learning_rate"):
        build_optimizer(model, value)
    with pytest.raises(ValueError, match="learning_rate"):
        build_optimizer(model, value, total_steps=10)


@pytest.mark.parametrize("kwargs, name", [
    ({"weight_decay": float("nan")}, "weight_decay"), ({"weight_decay": -0.1}, "weight_decay"),
    ({"beta_2": 1.0}, "beta_2"), ({"epsilon": 0.0}, "epsilon"),
    ({"global_clipnorm": float("inf")}, "global_clipnorm"),
    ({"total_steps": 0}, "total_steps"), ({"total_steps": 10, "warmup_steps": -1}, "warmup_steps"),
])
def test_build_optimizer_refuses_bad_hyper_parameters(kwargs, name):
    keras.utils.set_random_seed(0)
    with pytest.raises(ValueError, match=f"`{name}` must"):
        build_optimizer(CLIP(tiny_config("vit")), 1e-3, **kwargs)


def test_guard_stops_after_n_consecutive_skipped_steps_only():
    guard = SkippedStepsGuard(max_consecutive=3)
    guard.on_epoch_begin(0)
    for step, skipped in enumerate([1, 2, 2, 3, 4]):  # skipped, skipped, applied, ...
        guard.on_train_batch_end(step, {"skipped_steps": float(skipped)})
    guard.on_epoch_begin(1)  # the metric restarts at 0; the run of skips goes on
    with pytest.raises(TrainingDiverged, match="3 consecutive training steps skipped"):
        guard.on_train_batch_end(0, {"skipped_steps": 1.0})


def _train_argv(tmp_path, *flags):
    return ["train", "--synthetic", "24", "--config", TINY_CLIP, "--batch-size", "8",
            "--epochs", "1", "--output-dir", str(tmp_path / "run"), "--no-tensorboard",
            "--verbose", "0", *flags]


def test_train_cli_process_refuses_nan_lr_with_one_line(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "keras_clip.cli",
                             *_train_argv(tmp_path, "--lr", "nan")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("keras-clip")]
    expected = "keras-clip train: error: `--lr` must be a finite number > 0, received nan."
    assert errors == [expected], result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, message", [
    (["--lr", "inf"], "`--lr` must be a finite number > 0, received inf"),
    (["--lr=-1e-3"], "`--lr` must be a finite number > 0"),
    (["--weight-decay", "nan"], "`--weight-decay` must be a finite number >= 0"),
    (["--clipnorm", "0"], "`--clipnorm` must be a finite number > 0"),
    (["--warmup-steps", "-5"], "--warmup-steps must be an integer >= 0"),
    (["--max-skipped-steps", "0"], "--max-skipped-steps must be an integer >= 1"),
    (["--backup-every", "-3"], "--backup-every must be 'epoch' or a positive number"),
])
def test_train_cli_refuses_bad_flags_with_one_line(tmp_path, capsys, flags, message):
    assert main(_train_argv(tmp_path, *flags)) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "run").exists()


def test_train_cli_stops_a_diverging_run_without_saving(tmp_path, capsys):
    # lr 1e30: the first step throws the weights to ~1e30 (finite), every later loss is inf/NaN.
    with pytest.raises(SystemExit) as exit_info:
        main(_train_argv(tmp_path, "--lr", "1e30", "--max-skipped-steps", "2"))
    assert exit_info.value.code == 3
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-1].startswith("keras-clip train: error: 2 consecutive training steps skipped")
    assert not any("Traceback" in line for line in errors)
    for name in ("final", "summary.json", "checkpoints"):
        assert not (tmp_path / "run" / name).exists(), name
