"""Multi-head self-attention with a fused QKV projection (OpenAI's layout)."""

import keras
from keras import layers, ops

from keras_clip.layers.dense import Dense


@keras.saving.register_keras_serializable(package="keras_clip")
class MultiHeadSelfAttention(layers.Layer):
    """Self-attention whose Q, K and V come from one `in_proj` dense layer.

    The fused kernel holds `[q | k | v]` along its output axis, which is the
    transpose of PyTorch's `in_proj_weight`, so checkpoints map one to one.

    Args:
        num_heads: number of attention heads; must divide the input width.
        causal: if True, position `i` attends only to positions `<= i`.

    Example:
        >>> import numpy as np
        >>> attention = MultiHeadSelfAttention(num_heads=2, causal=True)
        >>> attention(np.zeros((1, 5, 8), "float32")).shape
        (1, 5, 8)
    """

    def __init__(self, num_heads, causal=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"`num_heads` must be a positive integer, received {num_heads!r}.")
        self.num_heads = num_heads
        self.causal = bool(causal)

    def build(self, input_shape):
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(
                f"The input width ({width}) must be divisible by num_heads ({self.num_heads})."
            )
        self.width = width
        self.head_dim = width // self.num_heads
        self.in_proj = Dense(3 * width, name="in_proj", dtype=self.dtype_policy)
        self.in_proj.build(input_shape)
        self.out_proj = Dense(width, name="out_proj", dtype=self.dtype_policy)
        self.out_proj.build(input_shape)

    def call(self, x):
        length = ops.shape(x)[1]
        qkv = ops.reshape(self.in_proj(x), (-1, length, 3, self.num_heads, self.head_dim))
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, L, H, Dh)
        query = query * ops.cast(self.head_dim**-0.5, query.dtype)
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key)  # (B, H, L, L)
        scores = ops.cast(scores, "float32")
        if self.causal:
            positions = ops.arange(length)
            allowed = positions[None, :] <= positions[:, None]  # (L, L)
            scores = ops.where(allowed, scores, ops.full_like(scores, -1e9))
        weights = ops.cast(ops.softmax(scores, axis=-1), value.dtype)
        out = ops.einsum("bhqk,bkhd->bqhd", weights, value)  # (B, L, H, Dh)
        return self.out_proj(ops.reshape(out, (-1, length, self.width)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "causal": self.causal})
        return config
