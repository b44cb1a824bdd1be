"""The export's staging folders: a killed export's are removed by the next export to the
same destination; a running export's, another host's or another destination's are kept."""

import os
import subprocess
import sys

from keras_clip.export import destination
from keras_clip.export.destination import STAGING_INFIX, publish, staging_folder


def _dead_pid():
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_next_export_removes_only_the_staging_folders_of_killed_exports(tmp_path):
    host = destination._host_tag()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "killed": f".out{STAGING_INFIX}{host}-{_dead_pid()}-a1b2",
            "killed_trash": f".out{STAGING_INFIX}{host}-{_dead_pid()}-c3d4.old-e5f6",
            "running": f".out{STAGING_INFIX}{host}-{running.pid}-g7h8",
            "this_process": f".out{STAGING_INFIX}{host}-{os.getpid()}-i9j0",
            "other_host": f".out{STAGING_INFIX}{'0' * 8 if host != '0' * 8 else '1' * 8}-{_dead_pid()}-k1",
            "other_destination": f".output{STAGING_INFIX}{host}-{_dead_pid()}-l2",
            "no_pid": f".out{STAGING_INFIX}m3n4o5p6",
        }
        for name in names.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "image_encoder.onnx").write_bytes(b"partial")
        (tmp_path / "out").mkdir()

        staging = staging_folder(str(tmp_path / "out"))

        left = set(os.listdir(tmp_path))
        assert names["killed"] not in left and names["killed_trash"] not in left
        kept = {key for key, name in names.items() if name in left}
        assert kept == {"running", "this_process", "other_host", "other_destination", "no_pid"}
        assert os.path.basename(staging).startswith(f".out{STAGING_INFIX}{host}-{os.getpid()}-")
        publish(staging, str(tmp_path / "out"))
        assert os.listdir(tmp_path / "out") == []
    finally:
        running.kill()
        running.wait()
