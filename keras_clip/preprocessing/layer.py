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
from keras_clip.preprocessing.graph import check_values_tf, preprocess_tf


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
            f"shape {images.shape}. Use `preprocess_tf` in tf.data for varied sizes."
        )
    if channels not in (1, 3, 4):
        raise rules.channel_error(channels)
    return images


@keras.saving.register_keras_serializable(package="keras_clip")
class ImagePreprocessor(keras.layers.Layer):
    """CLIP image preprocessing to float32 `(B, S, S, 3)`.

    - numpy arrays, PIL images, image file paths or lists mixing them (any
      sizes; HW, HWC with 1/3/4 channels, or a batch): eager PIL-exact path,
      returns numpy.
    - tf tensors (e.g. in `tf.data.Dataset.map`, any backend): in-graph path
      (`preprocess_tf`), one HWC image or a batch.
    - backend tensors inside a model: `keras.ops` path (static H and W).

    Pixel values, the same on every path (`pixel_rule`): uint8 as is; uint16
    (and PIL modes `I;16`, `I;16B`, `I`) scaled to 8 bits as `round(v / 257)`,
    never clipped; other integer dtypes must hold values in [0, 255]; float
    must be finite and in [0, 1]. Anything else raises a ValueError naming what
    was received (in a tf graph, an InvalidArgumentError with the same words).

    Args:
        image_size: output side `S` (224, 288, 336, 384 or 448 for OpenAI models).
        mean, std: per-channel normalisation (OpenAI's by default; some open
            weights use others, e.g. 0.5: `for_model` reads them off a model).
        resize_mode: "shortest" (shortest side to `S`, center crop; OpenAI's)
            or "squash" (both sides straight to `S`, no crop; DFN-5B's).

    Example:
        >>> import numpy as np
        >>> pre = ImagePreprocessor(224)
        >>> pre(np.zeros((480, 640, 3), np.uint8)).shape
        (1, 224, 224, 3)
        >>> round(float(pre(np.full((480, 640), 65535, np.uint16)).max()), 3)  # 16-bit white
        2.146
    """

    def __init__(self, image_size=224, mean=rules.MEAN, std=rules.STD, resize_mode="shortest",
                 **kwargs):
        super().__init__(**kwargs)
        self.image_size = rules.check_size(image_size)
        self._declared_rule = None  # the pixel rule of the symbolic input, if any
        mean32, std32 = rules.check_mean_std(mean, std)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._mean32, self._std32 = mean32, std32
        self.resize_mode = rules.check_resize_mode(resize_mode)

    @classmethod
    def for_model(cls, model, **kwargs):
        """The preprocessor a model's weights expect: its image size and `preprocessing`.

        Args:
            model: a `keras_clip.CLIP` (or anything with a `CLIPConfig` as
                `.config`) or a `CLIPConfig`.

        Example:
            >>> pre = ImagePreprocessor.for_model(keras_clip.from_preset(  # doctest: +SKIP
            ...     "vit_h14_dfn5b", weights=None))
            >>> pre.resize_mode  # doctest: +SKIP
            'squash'
        """
        config = getattr(model, "config", model)
        if not (hasattr(config, "preprocessing") and hasattr(config, "vision")):
            raise ValueError("for_model expects a keras_clip CLIP model or a CLIPConfig; "
                             f"received {type(model).__name__}.")
        return cls(**rules.model_options(config), **kwargs)

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
        # numpy arrays, PIL images, paths, lists; anything else fails validation there.
        return preprocess_numpy(inputs, self.image_size, self.mean, self.std, self.resize_mode)

    def _call_tf(self, images):
        import tensorflow as tf

        rank = images.shape.rank
        if rank in (2, 3):
            return self._one_tf(images)[None]
        if rank != 4:
            raise ValueError(
                "Expected an image (H, W, C) or a batch (B, H, W, C); "
                f"received shape {images.shape}."
            )
        return tf.map_fn(
            self._one_tf,
            images,
            fn_output_signature=tf.TensorSpec((self.image_size,) * 2 + (3,), tf.float32),
        )

    def _one_tf(self, image):
        return preprocess_tf(image, self.image_size, self.mean, self.std, self.resize_mode)

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
        new_h, new_w, top, left = rules.geometry(height, width, size, self.resize_mode)
        crop = None if self.resize_mode == "squash" else (top, left, size)
        resize = _resize_pass(eight_bit)
        x = rules.two_pass_resize(x, height, width, new_h, new_w, resize, crop, axis=1)
        if has_alpha:
            x = rules.unpremultiply(x[..., :3], x[..., 3:], ops)
        mean = ops.convert_to_tensor(self._mean32)
        std = ops.convert_to_tensor(self._std32)
        return rules.normalize(x, mean, std)  # (B, S, S, 3)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) == 4 else 1
        return (batch, self.image_size, self.image_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size, "mean": list(self.mean),
                       "std": list(self.std), "resize_mode": self.resize_mode})
        return config
