"""The causal text tower of CLIP, as a functional model."""

import keras
from keras import layers

from keras_clip.config import TextConfig
from keras_clip.layers import EndOfTextPooling, ResidualAttentionBlock, TokenAndPositionEmbedding


@keras.saving.register_keras_serializable(package="keras_clip")
class TextTransformerEncoder(keras.Model):
    """Token ids `(B, L)` -> projected embeddings `(B, embed_dim)`.

    Token and position embeddings, pre-LN causal transformer, `ln_final`, the
    feature at the end-of-text token (highest id in each row), projection.

    Args:
        text: a `TextConfig` or its dict.
        embed_dim: width of the shared embedding space.
        dtype: optional dtype policy for every layer.

    Example:
        >>> encoder = TextTransformerEncoder(
        ...     {"width": 64, "layers": 1, "context_length": 77}, embed_dim=32)
        >>> encoder.output_shape
        (None, 32)
    """

    def __init__(self, text, embed_dim, dtype=None, **kwargs):
        config = text if isinstance(text, TextConfig) else TextConfig(**text)
        token_ids = keras.Input((config.context_length,), dtype="int32", name="token_ids")
        x = TokenAndPositionEmbedding(
            config.vocab_size, config.context_length, config.width, name="embeddings", dtype=dtype
        )(token_ids)
        for index in range(config.layers):
            x = ResidualAttentionBlock(
                config.heads,
                config.mlp_dim,
                activation=config.activation,
                causal=True,
                layer_norm_epsilon=config.layer_norm_epsilon,
                name=f"resblocks_{index}",
                dtype=dtype,
            )(x)
        x = layers.LayerNormalization(
            epsilon=config.layer_norm_epsilon, name="ln_final", dtype=dtype
        )(x)
        x = EndOfTextPooling(name="eot_pooling", dtype=dtype)(x, token_ids)
        x = layers.Dense(embed_dim, use_bias=False, name="text_projection", dtype=dtype)(x)
        super().__init__(inputs=token_ids, outputs=x, **kwargs)
        self.config = config
        self.embed_dim = embed_dim
        self.dtype_override = dtype

    @property
    def context_length(self):
        return self.config.context_length

    def get_config(self):
        return {
            "text": self.config.__dict__.copy(),
            "embed_dim": self.embed_dim,
            "dtype": self.dtype_override,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
