"""`ImagePreprocessor`: the Keras layer that routes each input to its path.

numpy arrays and PIL images take the eager PIL-exact path (`eager`), tf
tensors the `tf.data` path (`graph`), backend tensors inside a model the
`keras.ops` path below (static height and width); all follow `rules`.

Example:
    >>> import numpy as np
    >>> ImagePreprocessor(224)(np.zeros((480, 640, 3), np.uint8)).shape
    (1, 224, 224, 3)
"""

import functools
import sys

import keras
from keras import ops

from keras_clip.backend_utils import is_tf_tensor
from keras_clip.preprocessing import rules
from keras_clip.preprocessing.eager import preprocess_numpy
from keras_clip.preprocessing.graph import center_crop_tf, check_values_tf


def _check_values(x, rule):
    """`x` once its values pass `rule`, on any backend.

    Concrete values raise a ValueError; a tf graph gets a tf Assert; under
    `jax.jit` a callback raises (surfacing as a JAX runtime error); torch's
    shape-only "meta" tensors are not checked.
    """
    if rule not in rules.RANGES:
        return x
    if is_tf_tensor(x):
        return check_values_tf(x, rule)
    if getattr(getattr(x, "device", None), "type", None) == "meta":
        return x
    finite = ops.all(ops.isfinite(x)) if rule == "float" else True
    low, high = ops.min(x), ops.max(x)
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.core.Tracer):
        jax.debug.callback(functools.partial(rules.check_values, rule), finite, low, high)
        return x
    rules.check_values(rule, *(ops.convert_to_numpy(v) for v in (finite, low, high)))
    return x


def _resize_pass(eight_bit):
    """One `rules.two_pass_resize` pass with `keras.ops` on (B, H, W, C)."""

    def resize(x, h, w):
        if (h, w) == tuple(x.shape[1:3]):
            return x
        x = ops.image.resize(x, (h, w), interpolation="bicubic", antialias=True)
        return rules.round_pass(x, eight_bit, ops)

    return resize


def _static_batch(images):
    """(B, H, W, C) images with static H and W and 1, 3 or 4 channels."""
    if len(images.shape) == 3:
        images = images[None]
    if len(images.shape) != 4:
        raise ValueError(
            f"Expected a batch (B, H, W, C) or an image (H, W, C); received shape {images.shape}."
        )
    _, height, width, channels = images.shape
    if height is None or width is None:
        raise ValueError(
            "Inside a model the image height and width must be static; received "
            f"shape {images.shape}. Use `center_crop_tf` in tf.data for varied sizes."
        )
    if channels not in (1, 3, 4):
        raise rules.channel_error(channels)
    return images


@keras.saving.register_keras_serializable(package="keras_clip")
class ImagePreprocessor(keras.layers.Layer):
    """CLIP image preprocessing to float32 `(B, S, S, 3)`.

    - numpy arrays, PIL images or lists of them (any sizes; HW, HWC with
      1/3/4 channels, or a batch): eager PIL-exact path, returns numpy.
    - tf tensors (e.g. in `tf.data.Dataset.map`, any backend): in-graph path
      (`center_crop_tf`), one HWC image or a batch.
    - backend tensors inside a model: `keras.ops` path (static H and W).

    Pixel values, the same on every path (`pixel_rule`): uint8 as is; uint16
    (and PIL modes `I;16`, `I;16B`, `I`) scaled to 8 bits as `round(v / 257)`,
    never clipped; other integer dtypes must hold values in [0, 255]; float
    must be finite and in [0, 1]. Anything else raises a ValueError naming what
    was received (in a tf graph, an InvalidArgumentError with the same words).

    Args:
        image_size: output side `S` (224, 288, 336, 384 or 448 for OpenAI models).

    Example:
        >>> import numpy as np
        >>> pre = ImagePreprocessor(224)
        >>> pre(np.zeros((480, 640, 3), np.uint8)).shape
        (1, 224, 224, 3)
        >>> round(float(pre(np.full((480, 640), 65535, np.uint16)).max()), 3)  # 16-bit white
        2.146
    """

    def __init__(self, image_size=224, **kwargs):
        super().__init__(**kwargs)
        self.image_size = rules.check_size(image_size)
        self._declared_rule = None  # the pixel rule of the symbolic input, if any
        self.mean = rules.MEAN
        self.std = rules.STD

    def __call__(self, inputs, *args, **kwargs):
        if is_tf_tensor(inputs) and (
            keras.backend.backend() != "tensorflow"
            or inputs.dtype.name == "uint8"
            or None in inputs.shape[1:]
        ):
            return self._call_tf(inputs)
        if isinstance(inputs, keras.KerasTensor):
            self._declared_rule = rules.pixel_rule(inputs.dtype)
        if isinstance(inputs, keras.KerasTensor) or keras.ops.is_tensor(inputs):
            return super().__call__(inputs, *args, **kwargs)
        # numpy arrays, PIL images, lists; anything else fails validation there.
        return preprocess_numpy(inputs, self.image_size)

    def _call_tf(self, images):
        import tensorflow as tf

        rank = images.shape.rank
        if rank in (2, 3):
            return center_crop_tf(images, self.image_size)[None]
        if rank != 4:
            raise ValueError(
                "Expected an image (H, W, C) or a batch (B, H, W, C); "
                f"received shape {images.shape}."
            )
        return tf.map_fn(
            lambda im: center_crop_tf(im, self.image_size),
            images,
            fn_output_signature=tf.TensorSpec((self.image_size,) * 2 + (3,), tf.float32),
        )

    def call(self, images):
        rule = rules.pixel_rule(images.dtype)
        if rule == "int" and self._declared_rule == "uint16":
            rule = "uint16"  # Keras' torch backend feeds uint16 model inputs as int32
        eight_bit = rule != "float"
        images = _static_batch(images)
        _, height, width, channels = images.shape
        x = rules.to_eight_bit_scale(_check_values(images, rule), rule, ops)  # (B, H, W, C)
        if channels == 1:
            x = ops.concatenate([x, x, x], axis=-1)
        has_alpha = eight_bit and channels == 4
        if has_alpha:
            alpha = x[..., 3:]
            x = ops.concatenate([rules.premultiply(x[..., :3], alpha, ops), alpha], axis=-1)
        elif channels == 4:
            x = x[..., :3]
        size = self.image_size
        new_h, new_w = rules.resized_shape(height, width, size)
        crop = (rules.center_offset(new_h, size), rules.center_offset(new_w, size), size)
        resize = _resize_pass(eight_bit)
        x = rules.two_pass_resize(x, height, width, new_h, new_w, resize, crop, axis=1)
        if has_alpha:
            x = rules.unpremultiply(x[..., :3], x[..., 3:], ops)
        mean = ops.convert_to_tensor(rules.MEAN32)
        std = ops.convert_to_tensor(rules.STD32)
        return rules.normalize(x, mean, std)  # (B, S, S, 3)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) == 4 else 1
        return (batch, self.image_size, self.image_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size})
        return config
