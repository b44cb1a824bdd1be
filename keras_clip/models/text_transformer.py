"""The causal text tower of CLIP, as a functional model."""

import keras
from keras import layers

from keras_clip.config import TextConfig
from keras_clip.layers import EndOfTextPooling, TokenAndPositionEmbedding
from keras_clip.models.towers import Tower


@keras.saving.register_keras_serializable(package="keras_clip")
class TextTransformerEncoder(Tower):
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

    section = "text"
    torch_inference = "text"
    config_class = TextConfig

    def __init__(self, text, embed_dim, dtype=None, **kwargs):
        config = self.parse_config(text)
        token_ids = keras.Input((config.context_length,), dtype="int32", name="token_ids")
        x = TokenAndPositionEmbedding(
            config.vocab_size, config.context_length, config.width, name="embeddings", dtype=dtype
        )(token_ids)
        x = self.residual_blocks(x, config, dtype, causal=True)  # (B, L, width)
        x = layers.LayerNormalization(
            epsilon=config.layer_norm_epsilon, name="ln_final", dtype=dtype
        )(x)
        x = EndOfTextPooling(name="eot_pooling", dtype=dtype)(x, token_ids)
        x = layers.Dense(embed_dim, use_bias=False, name="text_projection", dtype=dtype)(x)
        super().__init__(token_ids, x, config, embed_dim, dtype, **kwargs)

    @property
    def context_length(self):
        return self.config.context_length
