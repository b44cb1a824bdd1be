"""keras_clip: CLIP for Keras 3 (TensorFlow, JAX and PyTorch backends).

Example:
    >>> import keras_clip
    >>> model = keras_clip.from_preset("vit_b32", weights=None)
"""

from keras_clip.config import CLIPConfig, ResNetConfig, TextConfig, ViTConfig
from keras_clip.models import CLIP
from keras_clip.presets import from_preset, list_presets
from keras_clip.preprocessing import ImagePreprocessor
from keras_clip.tokenizer import CLIPTokenizer

__version__ = "0.1.0"
