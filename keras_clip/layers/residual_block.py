"""Pre-LayerNorm transformer block (OpenAI's `ResidualAttentionBlock`)."""

import keras
from keras import layers

from keras_clip.layers.activations import get_activation
from keras_clip.layers.attention import MultiHeadSelfAttention
from keras_clip.layers.dense import Dense


@keras.saving.register_keras_serializable(package="keras_clip")
class ResidualAttentionBlock(layers.Layer):
    """`x + attn(ln_1(x))`, then `x + c_proj(act(c_fc(ln_2(x))))`.

    Args:
        num_heads: attention heads.
        mlp_dim: hidden width of the MLP.
        activation: `"quick_gelu"` (OpenAI models) or `"gelu"`.
        causal: causal self-attention (the text tower).
        layer_norm_epsilon: LayerNorm epsilon (PyTorch's default 1e-5).

    Example:
        >>> import numpy as np
        >>> block = ResidualAttentionBlock(num_heads=1, mlp_dim=32)
        >>> block(np.zeros((2, 3, 8), "float32")).shape
        (2, 3, 8)
    """

    def __init__(
        self,
        num_heads,
        mlp_dim,
        activation="quick_gelu",
        causal=False,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(mlp_dim, int) or mlp_dim <= 0:
            raise ValueError(f"`mlp_dim` must be a positive integer, received {mlp_dim!r}.")
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.activation = activation
        self.activation_fn = get_activation(activation)
        self.causal = causal
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        width = input_shape[-1]
        policy = self.dtype_policy
        eps = self.layer_norm_epsilon
        self.ln_1 = layers.LayerNormalization(epsilon=eps, name="ln_1", dtype=policy)
        self.attn = MultiHeadSelfAttention(
            self.num_heads, causal=self.causal, name="attn", dtype=policy
        )
        self.ln_2 = layers.LayerNormalization(epsilon=eps, name="ln_2", dtype=policy)
        self.c_fc = Dense(self.mlp_dim, name="c_fc", dtype=policy)
        self.c_proj = Dense(width, name="c_proj", dtype=policy)
        for layer in (self.ln_1, self.attn, self.ln_2):
            layer.build(input_shape)
        self.c_fc.build(input_shape)
        self.c_proj.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    def call(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.activation_fn(self.c_fc(self.ln_2(x))))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "activation": self.activation,
                "causal": self.causal,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
