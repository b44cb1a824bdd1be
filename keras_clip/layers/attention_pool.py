"""Attention pooling: the modified ResNet's global pool and projection."""

import keras
from keras import layers, ops

from keras_clip.layers.bottleneck import check_data_format
from keras_clip.layers.dense import Dense


@keras.saving.register_keras_serializable(package="keras_clip")
class AttentionPool2d(layers.Layer):
    """One multi-head attention whose query is the mean of the spatial tokens.

    The mean token is prepended to the `H*W` tokens, a learned positional
    embedding is added, and the attention output at the mean token is
    projected by `c_proj` to `output_dim` (this is the tower's projection).

    Args:
        spatial_size: side of the input feature map (image size / 32).
        num_heads: attention heads.
        output_dim: width of the output embedding.
        data_format: `"channels_last"` (input `(B, H, W, C)`, the default) or
            `"channels_first"` (`(B, C, H, W)`); the weights are the same in both.

    Example:
        >>> import numpy as np
        >>> pool = AttentionPool2d(spatial_size=2, num_heads=2, output_dim=6)
        >>> pool(np.zeros((3, 2, 2, 8), "float32")).shape
        (3, 6)
    """

    def __init__(self, spatial_size, num_heads, output_dim, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        for name, value in (
            ("spatial_size", spatial_size),
            ("num_heads", num_heads),
            ("output_dim", output_dim),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")
        self.spatial_size = spatial_size
        self.num_heads = num_heads
        self.output_dim = output_dim
        self.data_format = check_data_format(data_format)

    def build(self, input_shape):
        if self.data_format == "channels_first":
            width, spatial = input_shape[1], tuple(input_shape[2:4])
        else:
            width, spatial = input_shape[-1], tuple(input_shape[1:3])
        if width % self.num_heads:
            raise ValueError(
                f"The input channels ({width}) must be divisible by num_heads ({self.num_heads})."
            )
        if spatial != (self.spatial_size, self.spatial_size):
            raise ValueError(
                f"Expected a {self.spatial_size}x{self.spatial_size} feature map, "
                f"received shape {tuple(input_shape)}."
            )
        self.width = width
        self.head_dim = width // self.num_heads
        policy = self.dtype_policy
        self.positional_embedding = self.add_weight(
            shape=(self.spatial_size**2 + 1, width),
            initializer=keras.initializers.RandomNormal(stddev=width**-0.5),
            name="positional_embedding",
        )
        token_shape = (None, width)
        self.q_proj = Dense(width, name="q_proj", dtype=policy)
        self.k_proj = Dense(width, name="k_proj", dtype=policy)
        self.v_proj = Dense(width, name="v_proj", dtype=policy)
        self.c_proj = Dense(self.output_dim, name="c_proj", dtype=policy)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.c_proj):
            layer.build(token_shape)

    def call(self, features):
        if self.data_format == "channels_first":
            tokens = ops.reshape(features, (-1, self.width, self.spatial_size**2))  # (B, C, HW)
            tokens = ops.transpose(tokens, (0, 2, 1))  # (B, HW, C)
        else:
            tokens = ops.reshape(features, (-1, self.spatial_size**2, self.width))  # (B, HW, C)
        tokens = ops.concatenate([ops.mean(tokens, axis=1, keepdims=True), tokens], axis=1)
        tokens = tokens + ops.cast(self.positional_embedding, tokens.dtype)[None]
        heads = (-1, self.spatial_size**2 + 1, self.num_heads, self.head_dim)
        query = ops.reshape(self.q_proj(tokens[:, :1]), (-1, 1, self.num_heads, self.head_dim))
        key = ops.reshape(self.k_proj(tokens), heads)
        value = ops.reshape(self.v_proj(tokens), heads)
        query = query * ops.cast(self.head_dim**-0.5, query.dtype)
        scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", query, key), "float32")  # (B, H, 1, T)
        weights = ops.cast(ops.softmax(scores, axis=-1), value.dtype)
        pooled = ops.einsum("bhqk,bkhd->bqhd", weights, value)  # (B, 1, H, Dh)
        return self.c_proj(ops.reshape(pooled, (-1, self.width)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "spatial_size": self.spatial_size,
                "num_heads": self.num_heads,
                "output_dim": self.output_dim,
                "data_format": self.data_format,
            }
        )
        return config
