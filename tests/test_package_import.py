"""`import keras_clip` registers the package's Keras classes; the command stays backend-free.

Each case runs in a fresh process, since the point is what one import does.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SAVE = (
    "import sys, keras_clip\n"
    "from tests.conftest import tiny_config\n"
    "keras_clip.CLIP(tiny_config()).save(sys.argv[1])\n"
)
# Touches no keras_clip name before loading: the import alone must register CLIP.
LOAD = (
    "import sys, keras, keras_clip\n"
    "print(type(keras.saving.load_model(sys.argv[1])).__name__)\n"
)


def _python(code, *argv):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_keras_file_loads_right_after_import(tmp_path):
    path = str(tmp_path / "tiny.keras")
    saved = _python(SAVE, path)
    assert saved.returncode == 0, saved.stderr[-2000:]
    loaded = _python(LOAD, path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split()[-1] == "CLIP"
