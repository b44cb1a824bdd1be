"""Gradient caching (`compile(micro_batch_size=m)`): one SGD step equals the plain step.

Single device on the suite's backend (both losses, with loss scaling), two
replicas in a subprocess (tf.distribute on tensorflow, DataParallel on jax),
and the bad `micro_batch_size` values, refused before any step changes a weight.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_clip import CLIP
from tests.scripts.common import TINY, fixed_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = keras.backend.backend()
TOLERANCE = 1e-5  # relative to each weight tensor's largest entry


def relative_difference(a, b):
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-12))
               for x, y in zip(a, b))


def _weights(model):
    return [ops.convert_to_numpy(w) for w in model.get_weights()]


def _one_step(loss="softmax", micro_batch_size=None, optimizer=None, batch=8):
    keras.utils.set_random_seed(0)
    model = CLIP(TINY, loss=loss)
    before = _weights(model)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1),
                  micro_batch_size=micro_batch_size)
    history = model.fit(fixed_batch(batch), batch_size=batch, epochs=1, shuffle=False,
                        verbose=0).history
    return before, _weights(model), history


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_cached_step_equals_plain_step(loss):
    before, plain, plain_history = _one_step(loss)
    _, cached, cached_history = _one_step(loss, micro_batch_size=4)  # 2 micro-batches
    assert relative_difference(plain, before) > 1e-2  # the step moved the weights
    if loss == "sigmoid":  # the bias (the last weight) trains; the cached step moves it alike
        assert abs(float(plain[-1]) - float(before[-1])) > 1e-3
    assert relative_difference(plain, cached) < TOLERANCE
    for name in ("loss", "i2t_accuracy", "t2i_accuracy", "logit_scale"):
        assert cached_history[name] == pytest.approx(plain_history[name], rel=1e-5)


def test_cached_step_composes_with_loss_scaling():
    def scaled():  # the scale (2**15 at first) multiplies the cached embedding gradients
        return keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))

    _, plain, _ = _one_step(optimizer=scaled())
    _, cached, _ = _one_step(micro_batch_size=4, optimizer=scaled())
    assert relative_difference(plain, cached) < TOLERANCE


@pytest.mark.skipif(BACKEND == "torch", reason="Keras has no multi-device path on torch")
def test_cached_step_under_two_replicas_equals_single_device(tmp_path):
    out = tmp_path / "result.json"
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "tests.scripts.grad_cache_step", BACKEND,
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    for loss in ("softmax", "sigmoid"):
        assert result[loss]["moved"] > 1e-2
        assert result[loss]["cached_two_replicas"] < TOLERANCE
    assert result["sigmoid"]["plain_two_replicas"] < TOLERANCE  # the gathered sigmoid form


@pytest.mark.parametrize("value", [0, -2, 2.5, True, "4"])
def test_micro_batch_size_must_be_a_positive_integer(value):
    model = CLIP(TINY)
    with pytest.raises(ValueError, match="micro_batch_size must be a positive integer"):
        model.compile(optimizer="sgd", micro_batch_size=value)


@pytest.mark.parametrize("value, message", [
    (3, "micro_batch_size 3 must divide the per-replica batch 8"),
    (16, "micro_batch_size 16 is larger than the per-replica batch 8"),
])
def test_micro_batch_size_checked_against_the_batch_before_any_step(value, message):
    keras.utils.set_random_seed(0)
    model = CLIP(TINY)
    before = _weights(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1), micro_batch_size=value)
    with pytest.raises(ValueError, match=message):
        model.fit(fixed_batch(8), batch_size=8, epochs=1, verbose=0)
    if BACKEND != "jax":  # Keras' JAX fit leaves its variables unreadable after any error
        assert relative_difference(before, _weights(model)) == 0.0


def test_train_cli_refuses_a_micro_batch_that_does_not_split_the_batch(tmp_path, capsys):
    from keras_clip import cli

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    code = cli.main(["train", "--synthetic", "8", "--config", str(config), "--batch-size", "8",
                     "--micro-batch-size", "3", "--output-dir", str(tmp_path / "run")])
    assert code == 2
    assert "--micro-batch-size 3 must divide the per-replica batch 8" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything ran


@pytest.mark.skipif(BACKEND != "torch", reason="the torch backend's refusal")
def test_strategies_on_torch_name_the_backends_that_can():
    from keras_clip.training import make_strategy

    for name in ("data_parallel", "mirrored"):
        with pytest.raises(ValueError, match=r"cannot run on the torch backend.*tensorflow "
                                             r"backend \(mirrored, multiworker, tpu\) or the "
                                             r"jax backend \(data_parallel\)"):
            make_strategy(name)
