"""Scaled cosine-similarity logits with CLIP's learnable temperature."""

import math

import keras
from keras import layers, ops

MAX_LOGIT_SCALE = 100.0


def l2_normalize(x, axis=-1):
    """Divides by the L2 norm along `axis` (float32, safe for all-zero rows)."""
    x = ops.cast(x, "float32")
    return x / ops.maximum(ops.sqrt(ops.sum(x * x, axis=axis, keepdims=True)), 1e-12)


@keras.saving.register_keras_serializable(package="keras_clip")
class ContrastiveLogits(layers.Layer):
    """`min(exp(t), 100) * norm(images) @ norm(texts).T`, in float32.

    Holds the temperature `t` (variable `logit_scale`), initialised to
    `ln(1 / 0.07)`.

    Example:
        >>> import numpy as np
        >>> logits = ContrastiveLogits()(np.eye(2, 4), np.eye(3, 4))
        >>> logits.shape
        (2, 3)
    """

    def build(self, image_embeddings_shape=None, text_embeddings_shape=None):
        self.logit_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(1 / 0.07)),
            name="logit_scale",
            dtype="float32",
        )

    def scale(self):
        """The current multiplier, `min(exp(t), 100)`."""
        return ops.minimum(ops.exp(ops.cast(self.logit_scale, "float32")), MAX_LOGIT_SCALE)

    def call(self, image_embeddings, text_embeddings):
        images = l2_normalize(image_embeddings)
        texts = l2_normalize(text_embeddings)
        return self.scale() * ops.matmul(images, ops.transpose(texts))  # (B_img, B_txt)

    def compute_output_shape(self, image_embeddings_shape, text_embeddings_shape):
        return (image_embeddings_shape[0], text_embeddings_shape[0])

    def compute_output_spec(self, image_embeddings, text_embeddings):
        return keras.KerasTensor(
            (image_embeddings.shape[0], text_embeddings.shape[0]), dtype="float32"
        )
