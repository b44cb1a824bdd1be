"""The ViT image tower (OpenAI's `VisionTransformer`), as a functional model."""

import keras
from keras import layers

from keras_clip.config import ViTConfig
from keras_clip.layers import ClassTokenAndPositionEmbedding, PatchEmbedding
from keras_clip.models.towers import Tower


@keras.saving.register_keras_serializable(package="keras_clip")
class VisionTransformerEncoder(Tower):
    """Images `(B, S, S, 3)` -> projected embeddings `(B, embed_dim)`.

    Conv patch embedding (no bias), class token and positions, `ln_pre`,
    pre-LN residual blocks, `ln_post` on the class token, linear projection
    without bias.

    Args:
        vision: a `ViTConfig` or its dict.
        embed_dim: width of the shared embedding space.
        dtype: optional dtype policy for every layer (e.g. `"bfloat16"`).

    Example:
        >>> encoder = VisionTransformerEncoder(
        ...     {"image_size": 32, "width": 64, "layers": 1, "patch_size": 16},
        ...     embed_dim=32)
        >>> encoder.output_shape
        (None, 32)
    """

    section = "vision"
    config_class = ViTConfig

    def __init__(self, vision, embed_dim, dtype=None, **kwargs):
        config = self.parse_config(vision)
        images = keras.Input((config.image_size, config.image_size, 3), name="images")
        x = PatchEmbedding(
            config.width,
            config.patch_size,
            strides=config.patch_size,
            use_bias=False,
            name="conv1",
            dtype=dtype,
        )(images)
        x = layers.Reshape((config.grid_size**2, config.width), dtype=dtype)(x)  # (B, N, D)
        x = ClassTokenAndPositionEmbedding(config.grid_size**2, name="embeddings", dtype=dtype)(x)
        eps = config.layer_norm_epsilon
        x = layers.LayerNormalization(epsilon=eps, name="ln_pre", dtype=dtype)(x)
        x = self.residual_blocks(x, config, dtype)  # (B, L, width)
        x = layers.LayerNormalization(epsilon=eps, name="ln_post", dtype=dtype)(x[:, 0])
        x = layers.Dense(embed_dim, use_bias=False, name="proj", dtype=dtype)(x)
        super().__init__(images, x, config, embed_dim, dtype, **kwargs)

    @property
    def image_size(self):
        return self.config.image_size
