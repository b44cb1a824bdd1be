"""The modified ResNet image tower (OpenAI's `ModifiedResNet`), as a functional model."""

import keras
from keras import layers

from keras_clip.config import ResNetConfig
from keras_clip.layers import AttentionPool2d, Bottleneck


@keras.saving.register_keras_serializable(package="keras_clip")
class ModifiedResNetEncoder(keras.Model):
    """Images `(B, S, S, 3)` -> projected embeddings `(B, embed_dim)`.

    Stem of three 3x3 convolutions (the first with stride 2) and a 2x2 average
    pool; four stages of anti-aliased bottlenecks; attention pooling, whose
    output projection is the tower's projection.

    Args:
        vision: a `ResNetConfig` or its dict.
        embed_dim: width of the shared embedding space.
        dtype: optional dtype policy for every layer.

    Example:
        >>> encoder = ModifiedResNetEncoder(
        ...     {"image_size": 64, "width": 8, "layers": [1, 1, 1, 1]}, embed_dim=32)
        >>> encoder.output_shape
        (None, 32)
    """

    def __init__(self, vision, embed_dim, dtype=None, **kwargs):
        config = vision if isinstance(vision, ResNetConfig) else ResNetConfig(**vision)
        images = keras.Input((config.image_size, config.image_size, 3), name="images")
        x = images
        stem = ((config.width // 2, 2), (config.width // 2, 1), (config.width, 1))
        for index, (filters, stride) in enumerate(stem, start=1):
            x = layers.ZeroPadding2D(1, dtype=dtype)(x)
            x = layers.Conv2D(
                filters, 3, strides=stride, use_bias=False, name=f"conv{index}", dtype=dtype
            )(x)
            x = layers.BatchNormalization(
                epsilon=1e-5, momentum=0.9, name=f"bn{index}", dtype=dtype
            )(x)
            x = layers.ReLU(dtype=dtype)(x)
        x = layers.AveragePooling2D(2, dtype=dtype)(x)
        for stage, depth in enumerate(config.layers):
            planes = config.width * 2**stage
            for block in range(depth):
                stride = 2 if stage > 0 and block == 0 else 1
                x = Bottleneck(
                    planes, stride=stride, name=f"layer{stage + 1}_{block}", dtype=dtype
                )(x)
        x = AttentionPool2d(
            config.image_size // 32, config.heads, embed_dim, name="attnpool", dtype=dtype
        )(x)
        super().__init__(inputs=images, outputs=x, **kwargs)
        self.config = config
        self.embed_dim = embed_dim
        self.dtype_override = dtype

    @property
    def image_size(self):
        return self.config.image_size

    def get_config(self):
        vision = self.config.__dict__.copy()
        vision["layers"] = list(vision["layers"])
        return {
            "vision": vision,
            "embed_dim": self.embed_dim,
            "dtype": self.dtype_override,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
