"""The modified ResNet image tower (OpenAI's `ModifiedResNet`), as a functional model."""

import keras
from keras import layers

from keras_clip.config import ResNetConfig
from keras_clip.layers import AttentionPool2d, Bottleneck
from keras_clip.layers.bottleneck import batch_norm, check_data_format
from keras_clip.models.towers import Tower


@keras.saving.register_keras_serializable(package="keras_clip")
class ModifiedResNetEncoder(Tower):
    """Images `(B, S, S, 3)` -> projected embeddings `(B, embed_dim)`.

    Stem of three 3x3 convolutions (the first with stride 2) and a 2x2 average
    pool; four stages of anti-aliased bottlenecks; attention pooling, whose
    output projection is the tower's projection. Inputs are always channels-last;
    `data_format` is the layout the convolutions run in inside the tower.

    On the torch backend the tower defaults to channels-first (one transpose at
    the input instead of two copies around every convolution in Keras' torch
    conv; measured in `benchmarks/bench_resnet_layout.py`); elsewhere to
    channels-last (TensorFlow's CPU convolutions are NHWC only). The variables
    have the same shapes in both layouts, so checkpoints load into either.

    Args:
        vision: a `ResNetConfig` or its dict.
        embed_dim: width of the shared embedding space.
        dtype: optional dtype policy for every layer.
        data_format: `"channels_first"`, `"channels_last"`, or None (the
            backend's faster one, see above).

    Example:
        >>> encoder = ModifiedResNetEncoder(
        ...     {"image_size": 64, "width": 8, "layers": [1, 1, 1, 1]}, embed_dim=32)
        >>> encoder.output_shape
        (None, 32)
    """

    section = "vision"
    torch_inference = "resnet"
    config_class = ResNetConfig

    @staticmethod
    def block_name(stage, index):
        """The layer name of bottleneck `index` (0-based) of `stage` (1-based, as OpenAI's)."""
        return f"layer{stage}_{index}"

    @classmethod
    def block_names(cls, config):
        return [
            cls.block_name(stage, index)
            for stage, depth in enumerate(config.layers, start=1)
            for index in range(depth)
        ]

    def __init__(self, vision, embed_dim, dtype=None, data_format=None, **kwargs):
        config = self.parse_config(vision)
        layout = default_data_format() if data_format is None else data_format
        check_data_format(layout)
        images = keras.Input((config.image_size, config.image_size, 3), name="images")
        x = images
        if layout == "channels_first":
            x = layers.Permute((3, 1, 2), dtype=dtype)(x)  # (B, 3, S, S)
        stem = ((config.width // 2, 2), (config.width // 2, 1), (config.width, 1))
        for index, (filters, stride) in enumerate(stem, start=1):
            x = layers.ZeroPadding2D(1, data_format=layout, dtype=dtype)(x)
            x = layers.Conv2D(
                filters, 3, strides=stride, use_bias=False, data_format=layout,
                name=f"conv{index}", dtype=dtype,
            )(x)
            x = batch_norm(f"bn{index}", dtype, layout)(x)
            x = layers.ReLU(dtype=dtype)(x)
        x = layers.AveragePooling2D(2, data_format=layout, dtype=dtype)(x)
        for stage, depth in enumerate(config.layers):
            planes = config.width * 2**stage
            for block in range(depth):
                stride = 2 if stage > 0 and block == 0 else 1
                x = Bottleneck(
                    planes, stride=stride, data_format=layout,
                    name=self.block_name(stage + 1, block), dtype=dtype,
                )(x)
        x = AttentionPool2d(
            config.image_size // 32, config.heads, embed_dim, data_format=layout,
            name="attnpool", dtype=dtype,
        )(x)
        super().__init__(images, x, config, embed_dim, dtype, **kwargs)
        self.data_format = data_format  # None: chosen per backend when loaded
        self.layout = layout

    def get_config(self):
        return dict(super().get_config(), data_format=self.data_format)

    @property
    def image_size(self):
        return self.config.image_size


def default_data_format():
    """The ResNet tower's faster internal layout on this Keras backend."""
    return "channels_first" if keras.backend.backend() == "torch" else "channels_last"
