"""The modified ResNet's bottleneck block with anti-aliased downsampling."""

import keras
from keras import layers


def _batch_norm(name, policy):
    # PyTorch's defaults (eps 1e-5, momentum 0.1), which the checkpoints assume.
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name, dtype=policy)


@keras.saving.register_keras_serializable(package="keras_clip")
class Bottleneck(layers.Layer):
    """1x1 -> 3x3 -> [avgpool(stride)] -> 1x1 (x4 channels), plus a shortcut.

    Downsampling is an average pool before the last convolution, and on the
    shortcut an average pool followed by a 1x1 convolution and BatchNorm (the
    OpenAI "anti-aliased" bottleneck). Channels-last.

    Args:
        planes: width of the inner convolutions; the output has `4 * planes`.
        stride: spatial downsampling factor (1 or 2).

    Example:
        >>> import numpy as np
        >>> block = Bottleneck(planes=4, stride=2)
        >>> block(np.zeros((1, 8, 8, 16), "float32")).shape
        (1, 4, 4, 16)
    """

    expansion = 4

    def __init__(self, planes, stride=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(planes, int) or planes <= 0:
            raise ValueError(f"`planes` must be a positive integer, received {planes!r}.")
        if stride not in (1, 2):
            raise ValueError(f"`stride` must be 1 or 2, received {stride!r}.")
        self.planes = planes
        self.stride = stride

    def build(self, input_shape):
        policy = self.dtype_policy
        planes, out_channels = self.planes, self.planes * self.expansion
        conv = lambda filters, size, name: layers.Conv2D(  # noqa: E731
            filters, size, use_bias=False, name=name, dtype=policy
        )
        self.conv1, self.bn1 = conv(planes, 1, "conv1"), _batch_norm("bn1", policy)
        self.pad2 = layers.ZeroPadding2D(1, dtype=policy)
        self.conv2, self.bn2 = conv(planes, 3, "conv2"), _batch_norm("bn2", policy)
        self.conv3, self.bn3 = conv(out_channels, 1, "conv3"), _batch_norm("bn3", policy)
        self.pool = None
        if self.stride > 1:
            self.pool = layers.AveragePooling2D(self.stride, dtype=policy)
        self.has_downsample = self.stride > 1 or input_shape[-1] != out_channels
        if self.has_downsample:
            self.downsample_conv = conv(out_channels, 1, "downsample_conv")
            self.downsample_bn = _batch_norm("downsample_bn", policy)

        shape = tuple(input_shape)
        inner = shape[:-1] + (planes,)
        self.conv1.build(shape)
        self.bn1.build(inner)
        self.conv2.build(inner)
        self.bn2.build(inner)
        pooled = self.compute_output_shape(shape)
        self.conv3.build(pooled[:-1] + (planes,))
        self.bn3.build(pooled)
        if self.has_downsample:
            self.downsample_conv.build(pooled[:-1] + (shape[-1],))
            self.downsample_bn.build(pooled)

    def call(self, x, training=False):
        out = keras.activations.relu(self.bn1(self.conv1(x), training=training))
        out = keras.activations.relu(self.bn2(self.conv2(self.pad2(out)), training=training))
        if self.pool is not None:
            out = self.pool(out)
        out = self.bn3(self.conv3(out), training=training)
        identity = x
        if self.has_downsample:
            if self.pool is not None:
                identity = self.pool(identity)
            identity = self.downsample_bn(self.downsample_conv(identity), training=training)
        return keras.activations.relu(out + identity)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.stride > 1:
            height = None if height is None else height // self.stride
            width = None if width is None else width // self.stride
        return (batch, height, width, self.planes * self.expansion)

    def get_config(self):
        config = super().get_config()
        config.update({"planes": self.planes, "stride": self.stride})
        return config
