"""keras_clip: CLIP for Keras 3 (TensorFlow, JAX and PyTorch backends).

The public names load on first use (PEP 562), so `import keras_clip` and the
`keras-clip --help` / `presets` commands import no Keras backend.

Example:
    >>> import keras_clip
    >>> model = keras_clip.from_preset("vit_b32", weights=None)
"""

import importlib
import importlib.util

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
