"""A run SIGKILLed mid-epoch and restarted with BackupAndRestore ends where an
uninterrupted run ends (same seed, same data order)."""

import os
import signal
import subprocess
import sys
import time

import keras

from tests.scripts.common import load_npz, max_difference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(backup, out, marker=None):
    args = [sys.executable, "-m", "tests.scripts.backup_run", str(backup), str(out)]
    return args + ([str(marker)] if marker else [])


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
               KERAS_BACKEND=keras.backend.backend())
    env.pop("TF_CONFIG", None)
    return env


def _run(args):
    proc = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    marker = tmp_path / "stalled"
    killed = subprocess.Popen(_command(tmp_path / "backup", tmp_path / "never.npz", marker),
                              cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert killed.poll() is None, killed.stderr.read()[-3000:]
            assert time.time() < deadline, "the run never reached the middle of epoch 2"
            time.sleep(0.2)
        os.kill(killed.pid, signal.SIGKILL)  # mid-epoch, after the epoch-1 backup
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "backup").exists() and not (tmp_path / "never.npz").exists()

    resumed = _run(_command(tmp_path / "backup", tmp_path / "resumed.npz"))
    uninterrupted = _run(_command(tmp_path / "backup_2", tmp_path / "uninterrupted.npz"))
    # The optimizer step count (and so the schedule) was restored with the weights.
    assert "iterations 12" in resumed and "iterations 12" in uninterrupted
    difference = max_difference(load_npz(tmp_path / "resumed.npz"),
                                load_npz(tmp_path / "uninterrupted.npz"))
    # CPU kernels are deterministic on all three backends for a fixed batch order;
    # the bound leaves room for a backend that reorders float sums.
    print(f"max |resumed - uninterrupted| = {difference:.3g}")
    assert difference <= 1e-6
