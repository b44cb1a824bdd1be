"""The ViT patch embedding: a bias-free convolution with stride = kernel = patch."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_clip")
class PatchEmbedding(layers.Conv2D):
    """`Conv2D(width, patch, strides=patch, use_bias=False)` that runs as one matmul on JAX.

    Non-overlapping patches make the convolution a matrix product of the
    flattened patches `(B, H/p, W/p, p*p*3)` with the kernel reshaped to
    `(p*p*3, width)`: the same variables and the same numbers. On JAX the
    matmul form is used because XLA:CPU runs this convolution's weight
    gradient as a naive loop inside a `lax.scan` body (gradient caching's
    micro-batch loop: 2.5x slower backward, `benchmarks/results/grad_cache.md`)
    and its forward pass slower than torch's. Other backends keep their
    convolution kernels (oneDNN on TensorFlow, channels-first on torch).

    Example:
        >>> import numpy as np
        >>> layer = PatchEmbedding(8, 4, strides=4, use_bias=False)
        >>> layer(np.zeros((1, 16, 16, 3), "float32")).shape
        (1, 4, 4, 8)
    """

    def call(self, inputs):
        if keras.backend.backend() != "jax" or self.data_format != "channels_last":
            return super().call(inputs)
        p, (height, width, channels) = self.kernel_size[0], inputs.shape[1:]
        rows, cols = height // p, width // p
        x = ops.reshape(inputs[:, :rows * p, :cols * p], (-1, rows, p, cols, p, channels))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, rows, cols, p * p * channels))
        return ops.matmul(x, ops.reshape(self.kernel, (p * p * channels, self.filters)))
