"""SigLIP's learnable logit bias `b` (a scalar added to every pair's logit)."""

import keras
from keras import layers, ops

SIGLIP_BIAS_INIT = -10.0


@keras.saving.register_keras_serializable(package="keras_clip")
class LogitBias(layers.Layer):
    """Holds the scalar variable `logit_bias`, initialised to -10 (SigLIP, arXiv 2303.15343).

    Calling it adds the bias to `logits`.

    Example:
        >>> import numpy as np
        >>> float(LogitBias()(np.zeros((1, 1), "float32"))[0, 0])
        -10.0
    """

    def build(self, logits_shape=None):
        self.logit_bias = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(SIGLIP_BIAS_INIT),
            name="logit_bias", dtype="float32")

    def bias(self):
        """The bias as a float32 scalar."""
        return ops.cast(self.logit_bias, "float32")

    def call(self, logits):
        return ops.cast(logits, "float32") + self.bias()

    def compute_output_shape(self, logits_shape):
        return logits_shape
