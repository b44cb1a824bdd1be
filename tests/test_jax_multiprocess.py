"""`keras-clip train --strategy data_parallel --jax-distributed` across two processes.

Two JAX processes on 127.0.0.1 (one CPU device each, gloo collectives) train
one epoch of the same synthetic data; both end with identical weights, equal
to one process training on the same global batch. Runs the CLI in
subprocesses (KERAS_BACKEND=jax there), once, when the suite's backend is jax.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.scripts.common import TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.skipif(keras.backend.backend() != "jax",
                                 reason="spawns jax processes; run once, with the jax suite"),
              pytest.mark.large]  # several JAX processes: minutes on a 2-core machine
h5py = pytest.importorskip("h5py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(tmp_path, out, *extra):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    return [sys.executable, "-m", "keras_clip.cli", "train", "--synthetic", "16",
            "--config", str(config), "--batch-size", "8", "--epochs", "1", "--lr", "0.05",
            "--weight-decay", "0", "--no-tensorboard", "--verbose", "0",
            "--output-dir", str(tmp_path / out), *extra]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               TF_CPP_MIN_LOG_LEVEL="2", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _two_processes(tmp_path, batch_sizes=("8", "8"), extra=()):
    port = _free_port()
    procs = []
    for index, batch in enumerate(batch_sizes):
        command = _command(tmp_path, f"process{index}", "--strategy", "data_parallel",
                           "--jax-distributed", *extra)
        command[command.index("--batch-size") + 1] = batch
        env = _env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=2,
                   JAX_PROCESS_ID=index)
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        outputs = [proc.communicate(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return [(proc.returncode, err) for proc, (_, err) in zip(procs, outputs)]


def _checkpoint(folder):
    arrays = {}
    with h5py.File(folder / "checkpoints" / "epoch_001.weights.h5", "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.parametrize("extra", [(), ("--micro-batch-size", "2")], ids=["plain", "cached"])
def test_two_processes_end_identical_and_equal_one_process(tmp_path, extra):
    single = subprocess.run(_command(tmp_path, "single"), cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    for code, err in _two_processes(tmp_path, extra=extra):
        assert code == 0, err[-3000:]
    first, second, alone = (_checkpoint(tmp_path / name)
                            for name in ("process0", "process1", "single"))
    assert sorted(first) == sorted(alone) and len(first) > 10
    assert all(np.array_equal(first[k], second[k]) for k in first)
    worst = max(float(np.max(np.abs(first[k] - alone[k])) / max(np.max(np.abs(alone[k])),
                                                                  1e-12)) for k in first)
    assert worst < 1e-5


def test_processes_disagreeing_on_the_batch_size_stop_before_training(tmp_path):
    for code, err in _two_processes(tmp_path, batch_sizes=("8", "16")):
        assert code == 2, err[-3000:]
        assert "--batch-size differs across the 2 processes ([8, 16] by process)" in err
        assert "Traceback" not in err
    assert not (tmp_path / "process0" / "checkpoints").exists()
