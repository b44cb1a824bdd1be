"""Shared plumbing of the tower models: one base class (config round trip) and input checks."""

import keras
import numpy as np
from keras import ops

from keras_clip.layers import ResidualAttentionBlock


class Tower(keras.Model):
    """Base of the three towers: a functional model built from one config section.

    A subclass names its section (`section`, the `get_config` key) and its
    config class (`config_class`), builds its graph, then calls
    `super().__init__(inputs, outputs, config, embed_dim, dtype)`. Residual
    blocks are named by `block_name` (the transformer towers' `resblocks_{i}`
    here; the ResNet overrides it), so remat and the checkpoint key map find them.
    The config round trip goes through the config's validating `to_dict` /
    `from_dict`, so a misspelled key raises a `ValueError` (a `.keras` file too).
    A subclass that names a `torch_inference` runner (the ResNet and text
    towers) is run by `keras_clip.models.torch_inference` on the torch backend
    for inference without gradients (`encode_image`, `encode_text`,
    `predict`): same numbers, less per-layer overhead; anything else runs the graph.

    Example:
        >>> from keras_clip.models import TextTransformerEncoder
        >>> tower = TextTransformerEncoder({"width": 64, "layers": 1}, embed_dim=32)
        >>> TextTransformerEncoder.from_config(tower.get_config()).embed_dim
        32
    """

    section = None
    config_class = None
    torch_inference = None  # a `torch_inference.RUNNERS` key: its no-grad inference path on torch

    @classmethod
    def parse_config(cls, values):
        """The section config from a config object or its dict."""
        if isinstance(values, cls.config_class):
            return values
        return cls.config_class.from_dict(values)

    @staticmethod
    def block_name(index):
        """The layer name of residual block `index` (0-based)."""
        return f"resblocks_{index}"

    @classmethod
    def block_names(cls, config):
        """The layer names of the residual blocks `config` gives (for remat and checkpoints)."""
        return [cls.block_name(index) for index in range(config.layers)]

    @classmethod
    def residual_blocks(cls, x, config, dtype, causal=False):
        """`config.layers` pre-LN transformer blocks applied to `x` `(B, L, width)`."""
        for index in range(config.layers):
            x = ResidualAttentionBlock(
                config.heads,
                config.mlp_dim,
                activation=config.activation,
                causal=causal,
                layer_norm_epsilon=config.layer_norm_epsilon,
                name=cls.block_name(index),
                dtype=dtype,
            )(x)
        return x

    def __init__(self, inputs, outputs, config, embed_dim, dtype=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        self.embed_dim = embed_dim
        self.dtype_override = dtype

    def call(self, inputs, training=None, mask=None, **kwargs):
        fast = self.torch_inference and not training and mask is None and not kwargs
        if fast and keras.backend.backend() == "torch":
            from keras_clip.models import torch_inference

            outputs = torch_inference.forward(self, inputs)
            if outputs is not None:
                return outputs
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def get_config(self):
        return {
            self.section: self.config.to_dict(),
            "embed_dim": self.embed_dim,
            "dtype": self.dtype_override,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def validate_images(images, image_size):
    """Raises a ValueError unless `images` is a float `(B, S, S, 3)` batch."""
    shape = tuple(images.shape)
    expected = f"(batch, {image_size}, {image_size}, 3)"
    if len(shape) != 4:
        raise ValueError(
            f"Expected preprocessed images of shape {expected}, received rank "
            f"{len(shape)} shape {shape}. Use keras_clip.ImagePreprocessor for raw images."
        )
    if shape[-1] != 3:
        raise ValueError(
            f"Expected 3 (RGB) channels last, shape {expected}; received {shape[-1]} "
            f"channels, shape {shape}."
        )
    if tuple(shape[1:3]) != (image_size, image_size):
        raise ValueError(
            f"Expected images of shape {expected}, received {shape}. "
            f"Resize with keras_clip.ImagePreprocessor(image_size={image_size})."
        )
    dtype = str(getattr(images, "dtype", ""))
    if "float" not in dtype:
        raise ValueError(
            f"Expected preprocessed float images (normalised with CLIP's mean/std), "
            f"received dtype {dtype}. Use keras_clip.ImagePreprocessor on uint8 images."
        )


def validate_token_ids(token_ids, context_length, vocab_size):
    """Raises a ValueError unless `token_ids` is an int `(B, L)` batch in range."""
    shape = tuple(token_ids.shape)
    if len(shape) != 2 or shape[1] != context_length:
        raise ValueError(
            f"Expected token ids of shape (batch, {context_length}), received {shape}. "
            "Use keras_clip.CLIPTokenizer to make them."
        )
    dtype = str(getattr(token_ids, "dtype", ""))
    if "int" not in dtype:
        raise ValueError(f"Expected integer token ids, received dtype {dtype}.")
    if shape[0] == 0:
        return
    values = _concrete(token_ids)
    if values is not None:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"Token ids must lie in [0, {vocab_size}), received values in [{low}, {high}]."
            )


def _concrete(x):
    """Returns x as numpy if it holds values now (not a symbolic tensor), else None."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # symbolic / traced tensors have no values
        return None
