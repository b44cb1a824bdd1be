"""The modified ResNet's bottleneck block with anti-aliased downsampling."""

import keras
from keras import layers

DATA_FORMATS = ("channels_last", "channels_first")


def check_data_format(data_format):
    """Raises a ValueError unless `data_format` is one of `DATA_FORMATS`."""
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be 'channels_last' or 'channels_first', received {data_format!r}."
        )
    return data_format


def batch_norm(name, policy, data_format="channels_last"):
    """PyTorch's BatchNorm defaults (eps 1e-5, momentum 0.1), which the checkpoints assume."""
    axis = 1 if data_format == "channels_first" else -1
    return layers.BatchNormalization(
        axis=axis, epsilon=1e-5, momentum=0.9, name=name, dtype=policy
    )


@keras.saving.register_keras_serializable(package="keras_clip")
class Bottleneck(layers.Layer):
    """1x1 -> 3x3 -> [avgpool(stride)] -> 1x1 (x4 channels), plus a shortcut.

    Downsampling is an average pool before the last convolution, and on the
    shortcut an average pool followed by a 1x1 convolution and BatchNorm (the
    OpenAI "anti-aliased" bottleneck). The variables have the same shapes in
    either data format, so weights move freely between them.

    Args:
        planes: width of the inner convolutions; the output has `4 * planes`.
        stride: spatial downsampling factor (1 or 2).
        data_format: `"channels_last"` (NHWC, the default) or `"channels_first"` (NCHW).

    Example:
        >>> import numpy as np
        >>> block = Bottleneck(planes=4, stride=2)
        >>> block(np.zeros((1, 8, 8, 16), "float32")).shape
        (1, 4, 4, 16)
    """

    expansion = 4

    def __init__(self, planes, stride=1, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(planes, int) or planes <= 0:
            raise ValueError(f"`planes` must be a positive integer, received {planes!r}.")
        if stride not in (1, 2):
            raise ValueError(f"`stride` must be 1 or 2, received {stride!r}.")
        self.planes = planes
        self.stride = stride
        self.data_format = check_data_format(data_format)

    def _shape(self, shape, height, width, channels):
        """An NHWC or NCHW shape tuple in this block's data format."""
        if self.data_format == "channels_first":
            return (shape[0], channels, height, width)
        return (shape[0], height, width, channels)

    def build(self, input_shape):
        policy, data_format = self.dtype_policy, self.data_format
        planes, out_channels = self.planes, self.planes * self.expansion
        conv = lambda filters, size, name: layers.Conv2D(
            filters, size, use_bias=False, data_format=data_format, name=name, dtype=policy
        )
        norm = lambda name: batch_norm(name, policy, data_format)
        self.conv1, self.bn1 = conv(planes, 1, "conv1"), norm("bn1")
        self.pad2 = layers.ZeroPadding2D(1, data_format=data_format, dtype=policy)
        self.conv2, self.bn2 = conv(planes, 3, "conv2"), norm("bn2")
        self.conv3, self.bn3 = conv(out_channels, 1, "conv3"), norm("bn3")
        self.pool = None
        if self.stride > 1:
            self.pool = layers.AveragePooling2D(
                self.stride, data_format=data_format, dtype=policy
            )
        shape = tuple(input_shape)
        height, width, channels = self._spatial(shape)
        self.has_downsample = self.stride > 1 or channels != out_channels
        if self.has_downsample:
            self.downsample_conv = conv(out_channels, 1, "downsample_conv")
            self.downsample_bn = norm("downsample_bn")

        inner = self._shape(shape, height, width, planes)
        padded = [None if side is None else side + 2 for side in (height, width)]
        self.conv1.build(shape)
        self.bn1.build(inner)
        self.conv2.build(self._shape(shape, *padded, planes))
        self.bn2.build(inner)
        pooled = self.compute_output_shape(shape)
        pooled_height, pooled_width, _ = self._spatial(pooled)
        self.conv3.build(self._shape(shape, pooled_height, pooled_width, planes))
        self.bn3.build(pooled)
        if self.has_downsample:
            self.downsample_conv.build(self._shape(shape, pooled_height, pooled_width, channels))
            self.downsample_bn.build(pooled)

    def _spatial(self, shape):
        """(height, width, channels) of a shape in this block's data format."""
        if self.data_format == "channels_first":
            return shape[2], shape[3], shape[1]
        return shape[1], shape[2], shape[3]

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
        height, width, _ = self._spatial(tuple(input_shape))
        if self.stride > 1:
            height = None if height is None else height // self.stride
            width = None if width is None else width // self.stride
        return self._shape(tuple(input_shape), height, width, self.planes * self.expansion)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"planes": self.planes, "stride": self.stride, "data_format": self.data_format}
        )
        return config
