"""keras_clip: CLIP for Keras 3 (TensorFlow, JAX and PyTorch backends).

`import keras_clip` registers the package's Keras classes, so that
`keras.saving.load_model("model.keras")` works after it. Only inside the
`keras-clip` command (console script or `python -m keras_clip.cli`) do the
public names load on first use (PEP 562): `--help`, `presets` and argument
errors import no Keras backend there.

Example:
    >>> import keras_clip
    >>> model = keras_clip.from_preset("vit_b32", weights=None)
"""

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

_PUBLIC = {  # name -> the module that defines it
    "CLIPConfig": "keras_clip.config",
    "ResNetConfig": "keras_clip.config",
    "TextConfig": "keras_clip.config",
    "ViTConfig": "keras_clip.config",
    "CLIP": "keras_clip.models",
    "from_preset": "keras_clip.presets",
    "list_presets": "keras_clip.presets",
    "ImagePreprocessor": "keras_clip.preprocessing",
    "CLIPTokenizer": "keras_clip.tokenizer",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a sub-package
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'keras_clip' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


def _imported_by_command():
    """True while the `keras-clip` command starts: its console script, or `python -m keras_clip...`.

    `python -m` sets `sys.argv[0]` to "-m" while it imports the module's
    package, so "-m" here means a `keras_clip` module is about to run as main.
    """
    started = sys.argv[0] if sys.argv else ""
    return started == "-m" or os.path.basename(started).startswith("keras-clip")


_KERAS_OBJECT_MODULES = ("keras_clip.models", "keras_clip.preprocessing.layer", "keras_clip.finetune.head")

if not _imported_by_command():
    for _module in _KERAS_OBJECT_MODULES:  # registers every serializable class with Keras
        importlib.import_module(_module)

