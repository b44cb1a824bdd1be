"""CLIP image preprocessing: eager (PIL, exact) and in-graph (tf.data / keras.ops).

The reference is open_clip's `image_transform(size, is_train=False)`: PIL bicubic
resize of the shortest side to `size` (the long side becomes
`int(size * long / short)`), a center crop whose offset is
`round((side - size) / 2)` (half to even), `/ 255`, then CLIP's mean/std.

- Eager path (numpy / PIL input): uses PIL itself, so it matches the
  reference to float32 rounding (max abs difference 0 measured).
- In-graph path (`center_crop_tf`, `random_resized_crop_tf`, and the layer
  inside a model): antialiased bicubic resize (Keys cubic, a = -0.5, the
  kernel PIL uses), done as PIL does it — two 1-D passes in Pillow's order
  (see `horizontal_pass_first`), each rounded to uint8, and RGBA resized
  alpha-premultiplied. Only pixels whose value lies within float error of a
  rounding boundary differ (by one grey level, 0.015 normalised); mean abs
  difference ~1e-6 on the test photographs.
- `random_resized_crop_tf` is open_clip's training transform
  (torchvision `RandomResizedCrop(size, scale=(0.9, 1.0))`, bicubic).

Which path to use: numpy / PIL images (evaluation, the edge runtime's
reference) take the eager path; `tf.data` pipelines use the in-graph
functions (`center_crop_tf` for evaluation, `random_resized_crop_tf` for
training), which need no Python per image and match to within one grey level.

Pixel values, the same rule on every path (`pixel_rule`): uint8 is 8-bit;
uint16 is 16-bit, scaled to 8 bits as `round(value / 257)` (not clipped);
other integer dtypes must hold 8-bit values in [0, 255]; float dtypes must be
finite and in [0, 1] (scaled by 255). PIL images in modes `I;16*` and `I` are
16-bit (values in [0, 65535]), mode `F` follows the float rule, and other modes
are 8-bit. Pillow decodes 16-bit RGB(A) PNGs to 8-bit RGB(A) itself (it keeps
the high byte, within one level of `value / 257`). Anything else is a
ValueError naming the dtype or the range received; in a tf graph, a failed
`tf.debugging.Assert` (InvalidArgumentError) with the same words; under
`jax.jit`, a runtime error carrying the ValueError.
"""

import functools
import sys

import keras
import numpy as np
from keras import ops

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
_MEAN32 = np.asarray(MEAN, dtype=np.float32)
_STD32 = np.asarray(STD, dtype=np.float32)


# --------------------------------------------------------------- geometry
def resized_shape(height, width, image_size):
    """(new_h, new_w) after resizing the shortest side to `image_size`.

    Example:
        >>> resized_shape(480, 640, 224)
        (224, 298)
    """
    if height <= width:
        return image_size, (image_size * width) // height
    return (image_size * height) // width, image_size


def center_offset(length, crop):
    """torchvision's `int(round((length - crop) / 2))` (round half to even)."""
    return int(round((length - crop) / 2.0))


def _check_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive int; received {image_size!r}.")
    return int(image_size)


def _channel_error(received):
    return ValueError(
        "Images must have 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, "
        f"HWC layout; received {received} channels."
    )


# ----------------------------------------------------------- pixel values
# rule -> (highest allowed value, what is expected); uint8 / uint16 need no check.
_RANGES = {
    "int": (255, "Integer images must hold 8-bit values in [0, 255] (16-bit data as uint16)"),
    "float": (1, "Float images must be finite and in [0, 1] (8-bit data as uint8, 16-bit as uint16)"),
    "I": (65535, "PIL mode I images are 16-bit and must hold values in [0, 65535]"),
}


def pixel_rule(dtype):
    """How pixel values of `dtype` are read: "uint8", "uint16", "int" or "float".

    Example:
        >>> pixel_rule("uint16"), pixel_rule("int32"), pixel_rule("float16")
        ('uint16', 'int', 'float')
    """
    name = dtype if isinstance(dtype, str) else keras.backend.standardize_dtype(dtype)
    if name in ("uint8", "uint16"):
        return name
    if "int" in name:
        return "int"
    if "float" in name:
        return "float"
    raise ValueError(
        "Images must be uint8, uint16, integer or float arrays (or PIL images); "
        f"received dtype {name}."
    )


def _check_values(rule, finite, low, high):
    """Raises ValueError when pixel statistics break `rule` (see `_RANGES`)."""
    limit, expected = _RANGES[rule]
    if not bool(finite):
        raise ValueError(f"{expected}; received NaN or inf values.")
    if not (low >= 0 and high <= limit):
        raise ValueError(f"{expected}; received range [{float(low):.6g}, {float(high):.6g}].")


def _sixteen_to_eight(array):
    """16-bit values -> uint8 as `round(value / 257)` (exact integer arithmetic)."""
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


# ------------------------------------------------------------------ eager
def _pil_values(image):
    """A PIL image, or for 16-bit (I;16*, I) and float (F) modes an array."""
    if image.mode == "F":
        return np.asarray(image)
    if image.mode.startswith("I"):
        array = np.asarray(image)
        _check_values("I", True, array.min(), array.max())
        return array.astype(np.uint16)
    return image


def _standardize_image(image):
    """Validates one image; returns a PIL image (uint8 data) or float32 (H, W, 3)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Received an empty PIL image of size {image.size}.")
        image = _pil_values(image)
        if isinstance(image, Image.Image):
            return image
    if image is None:
        raise ValueError("Received None; expected an HWC image (numpy array or PIL image).")
    array = np.asarray(image)
    rule = pixel_rule(array.dtype.name)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            "Expected an image of shape (H, W, C) or (H, W), or a batch (B, H, W, C); "
            f"received shape {array.shape}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"Received an empty image of shape {array.shape}.")
    channels = array.shape[2]
    if channels not in (1, 3, 4):
        raise _channel_error(channels)
    if rule in _RANGES:
        _check_values(rule, np.all(np.isfinite(array)), array.min(), array.max())
    if rule != "float":
        array = _sixteen_to_eight(array) if rule == "uint16" else array.astype(np.uint8)
        # Mode inferred from the shape: L, RGB or RGBA.
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0] if channels == 1 else array))
    array = array.astype(np.float32)
    array = array[:, :, :3]
    return np.repeat(array, 3, axis=2) if channels == 1 else array


def _resize_crop_numpy(image, image_size):
    """PIL bicubic shortest-side resize + center crop; float32 RGB in [0, 255].

    A PIL image goes through exactly the reference's steps (resize in its own
    mode — RGBA premultiplied, as PIL does — crop, then `convert("RGB")`).
    Float arrays are resized per channel in PIL's float mode, then clipped.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        width, height = image.size
    else:
        height, width = image.shape[:2]
    new_h, new_w = resized_shape(height, width, image_size)
    top = center_offset(new_h, image_size)
    left = center_offset(new_w, image_size)
    box = (left, top, left + image_size, top + image_size)
    if isinstance(image, Image.Image):
        image = image.resize((new_w, new_h), Image.BICUBIC).crop(box).convert("RGB")
        return np.asarray(image, dtype=np.float32)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[:, :, c]))  # mode "F"
            .resize((new_w, new_h), Image.BICUBIC)
            .crop(box)
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1) * np.float32(255.0), 0.0, 255.0)


def preprocess_numpy(images, image_size):
    """Eager, PIL-exact preprocessing to float32 `(B, S, S, 3)`.

    Args:
        images: an HWC (or HW grayscale) array (values as `pixel_rule`), a PIL
            image, a list of those (any sizes), or a `(B, H, W, C)` array.
        image_size: output side `S`.

    Example:
        >>> import numpy as np
        >>> preprocess_numpy(np.zeros((300, 400, 3), np.uint8), 224).shape
        (1, 224, 224, 3)
    """
    image_size = _check_size(image_size)
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("Received an empty list of images.")
        items = list(images)
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        if images.shape[0] == 0:
            raise ValueError(f"Received an empty batch of shape {images.shape}.")
        items = list(images)
    else:
        items = [images]
    out = np.empty((len(items), image_size, image_size, 3), dtype=np.float32)
    for i, item in enumerate(items):
        pixels = _resize_crop_numpy(_standardize_image(item), image_size)
        # As torchvision: uint8 -> float32 / 255, then (x - mean) / std in float32.
        out[i] = (pixels / np.float32(255.0) - _MEAN32) / _STD32
    return out


# --------------------------------------------------------------- tf graph
def _tf():
    import tensorflow as tf

    return tf


@functools.lru_cache(maxsize=None)
def pillow_picks_pass_order():
    """True for Pillow >= 13, which may run the vertical resize pass first.

    Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when
    the height shrinks much more than the width; older Pillow always runs the
    horizontal pass first. The in-graph path follows the installed Pillow, so
    it matches the eager path (and open_clip) in the same environment;
    without Pillow it follows Pillow 13.
    """
    try:
        from PIL import __version__
    except ImportError:
        return True
    return int(__version__.split(".")[0]) >= 13


def horizontal_pass_first(height, width, new_h, new_w):
    """Whether Pillow resizes horizontally first (ints or tf tensors).

    Pillow 13: the horizontal pass runs first unless the vertical one shrinks
    the image and `height - new_h > 2 * (width - new_w)` (checked against
    Pillow 13.0 on 2,300 random shapes, no exception).
    """
    if not pillow_picks_pass_order():
        return True
    return (new_h >= height) | ((new_w < width) & (height - new_h <= 2 * (width - new_w)))


def _tf_check_values(image, rule):
    """`image` once its values pass `rule`: a ValueError eagerly, a tf Assert in a graph."""
    tf = _tf()
    if rule not in _RANGES:
        return image
    finite = tf.reduce_all(tf.math.is_finite(image)) if rule == "float" else tf.constant(True)
    low, high = tf.reduce_min(image), tf.reduce_max(image)
    if tf.executing_eagerly():
        _check_values(rule, finite.numpy(), low.numpy(), high.numpy())
        return image
    limit, expected = _RANGES[rule]
    ok = finite & (low >= 0) & (high <= limit)
    check = tf.debugging.Assert(ok, [f"{expected}; received (min, max, finite)", low, high, finite])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def _tf_to_255(image, rule):
    """float32 values on the 8-bit scale (uint16: `round(v / 257)`; float: `v * 255`)."""
    tf = _tf()
    if rule == "uint16":
        image = (tf.cast(image, tf.int32) + 128) // 257
    image = tf.cast(image, tf.float32)
    return image * 255.0 if rule == "float" else image


def _tf_prepare(image):
    """Checks an HWC tf image.

    Returns (float32 (H, W, C) in [0, 255], eight_bit, has_alpha); 8-bit images
    (all but float; see `pixel_rule`) come back as RGBa (alpha-premultiplied,
    4 channels) when they may carry alpha, since PIL resizes RGBA images
    premultiplied.
    """
    tf = _tf()
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[:, :, None]
    if image.shape.rank != 3:
        raise ValueError(
            f"Expected one image of shape (H, W, C) or (H, W); received shape {image.shape}."
        )
    channels = image.shape[-1]
    if channels is not None and channels not in (1, 3, 4):
        raise _channel_error(channels)
    rule = pixel_rule(image.dtype.name)
    eight_bit = rule != "float"
    shape = tf.shape(image)
    checks = [tf.debugging.assert_positive(shape[0] * shape[1], message="Received an empty image.")]
    if channels is None:
        checks.append(
            tf.debugging.Assert(
                tf.reduce_any(tf.equal(shape[2], [1, 3, 4])),
                ["Images must have 1, 3 or 4 channels; received", shape[2]],
            )
        )
    with tf.control_dependencies(checks):
        image = _tf_to_255(_tf_check_values(image, rule), rule)
    has_alpha = eight_bit and channels in (None, 4)
    if channels == 1:
        image = tf.tile(image, [1, 1, 3])
    elif channels is None:
        # Any of 1 / 3 / 4 channels -> RGBA (opaque unless given).
        rgb = tf.cond(
            tf.equal(shape[2], 1), lambda: tf.tile(image[:, :, :1], [1, 1, 3]), lambda: image[:, :, :3]
        )
        alpha = tf.cond(
            tf.equal(shape[2], 4), lambda: image[:, :, 3:4], lambda: tf.fill([shape[0], shape[1], 1], 255.0)
        )
        image = tf.concat([rgb, alpha], axis=-1) if has_alpha else rgb
    elif channels == 4 and not has_alpha:
        image = image[:, :, :3]
    if has_alpha:
        # PIL's RGBA -> RGBa: round(c * a / 255) with integer arithmetic.
        alpha = image[:, :, 3:]
        t = image[:, :, :3] * alpha + 128.0
        image = tf.concat([tf.floor((t + tf.floor(t / 256.0)) / 256.0), alpha], axis=-1)
    return image, eight_bit, has_alpha


def _tf_unpremultiply(x):
    """PIL's RGBa -> RGBA, then drop alpha: c * 255 // a (a in 1..254)."""
    tf = _tf()
    rgb, alpha = x[:, :, :3], x[:, :, 3:]
    scaled = tf.minimum(tf.floor(rgb * 255.0 / tf.maximum(alpha, 1.0)), 255.0)
    keep = tf.equal(alpha, 0.0) | tf.equal(alpha, 255.0)
    return tf.where(keep, rgb, scaled)


def _dim(x, i):
    tf = _tf()
    return x.shape[i] if x.shape[i] is not None else tf.shape(x)[i]


def _quantize(tf, x, to_uint8=True):
    # PIL stores every pass of a uint8 image as uint8: round half up, clip.
    return tf.clip_by_value(tf.floor(x + 0.5) if to_uint8 else x, 0.0, 255.0)


def _pil_like_resize_tf(image, new_h, new_w, quantize, crop=None):
    """Two-pass antialiased bicubic resize in Pillow's pass order and rounding.

    `crop`: optional (top, left, size) applied to the output; the first pass's
    output is cropped along its axis before the second pass, which is exact
    because the passes are separable.
    """
    tf = _tf()
    height, width = _dim(image, 0), _dim(image, 1)

    def resize(x, h, w):
        x = tf.image.resize(x, tf.stack([h, w]), method="bicubic", antialias=True)
        return _quantize(tf, x, quantize)

    def horizontal_then_vertical():
        x = resize(image, height, new_w)
        if crop is not None:
            x = x[:, crop[1] : crop[1] + crop[2]]
        x = resize(x, new_h, _dim(x, 1))
        return x if crop is None else x[crop[0] : crop[0] + crop[2]]

    def vertical_then_horizontal():
        x = resize(image, new_h, width)
        if crop is not None:
            x = x[crop[0] : crop[0] + crop[2]]
        x = resize(x, _dim(x, 0), new_w)
        return x if crop is None else x[:, crop[1] : crop[1] + crop[2]]

    first = horizontal_pass_first(height, width, new_h, new_w)
    if isinstance(first, (bool, np.bool_)):
        return horizontal_then_vertical() if first else vertical_then_horizontal()
    return tf.cond(first, horizontal_then_vertical, vertical_then_horizontal)


def _finish_tf(pixels, has_alpha, image_size):
    """RGBa -> RGB if needed, `/ 255`, CLIP mean/std; float32 (S, S, 3)."""
    tf = _tf()
    if has_alpha:
        pixels = _tf_unpremultiply(pixels)
    x = pixels / 255.0
    x = (x - tf.constant(_MEAN32)) / tf.constant(_STD32)
    return tf.ensure_shape(x, [image_size, image_size, 3])


def center_crop_tf(image_uint8, image_size):
    """In-graph eval transform for `tf.data`: float32 `(S, S, 3)` normalised.

    Shortest side to `image_size` (antialiased bicubic, Pillow's pass order and
    uint8 rounding), center crop, CLIP mean/std. Pixel values follow
    `pixel_rule` (uint16 scaled by 1/257; float taken to be in [0, 1] and not
    rounded); values outside the rule fail a `tf.debugging.Assert`.

    Example:
        >>> import tensorflow as tf
        >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
        >>> ds = ds.map(lambda im: center_crop_tf(im, 224))
    """
    tf = _tf()
    image_size = _check_size(image_size)
    image, eight_bit, has_alpha = _tf_prepare(image_uint8)
    height, width = _dim(image, 0), _dim(image, 1)
    if isinstance(height, int) and isinstance(width, int):
        new_h, new_w = resized_shape(height, width, image_size)
        top, left = center_offset(new_h, image_size), center_offset(new_w, image_size)
    else:
        height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
        short = tf.minimum(height, width)
        size64 = tf.constant(image_size, tf.int64)
        new_h = tf.where(height <= width, size64, size64 * height // short)
        new_w = tf.where(height <= width, size64 * width // short, size64)
        # tf.round rounds half to even, like Python's round.
        top = tf.cast(tf.round(tf.cast(new_h - image_size, tf.float64) / 2.0), tf.int32)
        left = tf.cast(tf.round(tf.cast(new_w - image_size, tf.float64) / 2.0), tf.int32)
        new_h, new_w = tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)
        image = tf.ensure_shape(image, [None, None, image.shape[-1]])
    pixels = _pil_like_resize_tf(image, new_h, new_w, eight_bit, crop=(top, left, image_size))
    return _finish_tf(pixels, has_alpha, image_size)


def resized_crop_tf(image_uint8, top, left, height, width, image_size):
    """Crops the box `(top, left, height, width)` and resizes it to `(S, S)`.

    torchvision's `F.resized_crop(..., BICUBIC)` on a PIL image, in-graph;
    returns float32 `(S, S, 3)` normalised.

    Example:
        >>> import tensorflow as tf
        >>> x = resized_crop_tf(tf.zeros((64, 80, 3), tf.uint8), 2, 4, 60, 70, 32)
    """
    image_size = _check_size(image_size)
    image, eight_bit, has_alpha = _tf_prepare(image_uint8)
    box = image[top : top + height, left : left + width]
    pixels = _pil_like_resize_tf(box, image_size, image_size, eight_bit)
    return _finish_tf(pixels, has_alpha, image_size)


def random_crop_box_tf(height, width, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
    """torchvision `RandomResizedCrop.get_params` in-graph: `(top, left, h, w)`.

    Ten candidate boxes of area `scale` x image area and aspect `ratio`
    (log-uniform); the first that fits wins, else a center crop clamped to
    `ratio`. `seed`: None (stateful ops) or a shape-(2,) int seed (stateless).
    """
    tf = _tf()
    height = tf.cast(height, tf.float64)
    width = tf.cast(width, tf.float64)
    log_ratio = tf.math.log(tf.constant(ratio, tf.float64))
    if seed is None:
        u = tf.random.uniform([4, 10], dtype=tf.float64)
    else:
        u = tf.random.stateless_uniform([4, 10], seed=seed, dtype=tf.float64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[0])
    aspect = tf.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
    w = tf.round(tf.sqrt(area * aspect))  # half to even, like Python's round
    h = tf.round(tf.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    top = tf.floor(u[2] * (height - h + 1))
    left = tf.floor(u[3] * (width - w + 1))
    first = tf.argmax(tf.cast(fits, tf.int32))
    in_ratio = width / height
    fb_w = tf.where(in_ratio < min(ratio), width, tf.where(in_ratio > max(ratio), tf.round(height * max(ratio)), width))
    fb_h = tf.where(in_ratio < min(ratio), tf.round(width / min(ratio)), height)
    fallback = tf.stack([tf.floor((height - fb_h) / 2), tf.floor((width - fb_w) / 2), fb_h, fb_w])
    chosen = tf.stack([top[first], left[first], h[first], w[first]])
    box = tf.where(tf.reduce_any(fits), chosen, fallback)
    return tuple(tf.unstack(tf.cast(box, tf.int32)))


def random_resized_crop_tf(image_uint8, image_size, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
    """open_clip's training transform in-graph: random resized crop, bicubic.

    Returns float32 `(S, S, 3)` normalised. `seed`: None or a shape-(2,) int
    seed for stateless sampling.

    Example:
        >>> import tensorflow as tf
        >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
        >>> ds = ds.map(lambda im: random_resized_crop_tf(im, 224))
    """
    tf = _tf()
    if not (0 < scale[0] <= scale[1] <= 1.0) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(
            f"Expected 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]; "
            f"received scale={scale}, ratio={ratio}."
        )
    image = tf.convert_to_tensor(image_uint8)
    shape = tf.shape(image)
    top, left, h, w = random_crop_box_tf(shape[0], shape[1], scale, ratio, seed)
    return resized_crop_tf(image, top, left, h, w, image_size)


# ------------------------------------------------------------------ layer
def _is_tf_tensor(x):
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, (tf.Tensor, tf.Variable))


def _ops_check_values(x, rule):
    """`x` once its values pass `rule`, on any backend.

    Concrete values raise a ValueError; a tf graph gets a tf Assert; under
    `jax.jit` a callback raises (surfacing as a JAX runtime error); torch's
    shape-only "meta" tensors are not checked.
    """
    if rule not in _RANGES:
        return x
    if _is_tf_tensor(x):
        return _tf_check_values(x, rule)
    if getattr(getattr(x, "device", None), "type", None) == "meta":
        return x
    finite = ops.all(ops.isfinite(x)) if rule == "float" else True
    low, high = ops.min(x), ops.max(x)
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.core.Tracer):
        jax.debug.callback(functools.partial(_check_values, rule), finite, low, high)
        return x
    _check_values(rule, *(ops.convert_to_numpy(v) for v in (finite, low, high)))
    return x


def _ops_to_255(x, rule):
    """float32 values on the 8-bit scale (uint16: `round(v / 257)`; float: `v * 255`)."""
    if rule == "uint16":
        x = ops.floor_divide(ops.cast(x, "int32") + 128, 257)
    x = ops.cast(x, "float32")
    return x * 255.0 if rule == "float" else x


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
        self.image_size = _check_size(image_size)
        self._declared_rule = None  # the pixel rule of the symbolic input, if any
        self.mean = MEAN
        self.std = STD

    def __call__(self, inputs, *args, **kwargs):
        if _is_tf_tensor(inputs) and (
            keras.backend.backend() != "tensorflow"
            or inputs.dtype.name == "uint8"
            or None in inputs.shape[1:]
        ):
            return self._call_tf(inputs)
        if isinstance(inputs, keras.KerasTensor):
            self._declared_rule = pixel_rule(inputs.dtype)
        if isinstance(inputs, keras.KerasTensor) or keras.ops.is_tensor(inputs):
            return super().__call__(inputs, *args, **kwargs)
        # numpy arrays, PIL images, lists; anything else fails validation there.
        return preprocess_numpy(inputs, self.image_size)

    def _call_tf(self, images):
        tf = _tf()
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
        rule = pixel_rule(images.dtype)
        if rule == "int" and self._declared_rule == "uint16":
            rule = "uint16"  # Keras' torch backend feeds uint16 model inputs as int32
        eight_bit = rule != "float"
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
            raise _channel_error(channels)
        x = _ops_to_255(_ops_check_values(images, rule), rule)  # (B, H, W, C)
        if channels == 1:
            x = ops.concatenate([x, x, x], axis=-1)
        has_alpha = eight_bit and channels == 4
        if has_alpha:  # PIL resizes RGBA premultiplied (RGBa), rounding c * a / 255
            alpha = x[..., 3:]
            t = x[..., :3] * alpha + 128.0
            x = ops.concatenate([ops.floor((t + ops.floor(t / 256.0)) / 256.0), alpha], axis=-1)
        elif channels == 4:
            x = x[..., :3]
        size = self.image_size
        new_h, new_w = resized_shape(height, width, size)
        top, left = center_offset(new_h, size), center_offset(new_w, size)

        def resize(x, h, w):
            if (h, w) == tuple(x.shape[1:3]):
                return x
            x = ops.image.resize(x, (h, w), interpolation="bicubic", antialias=True)
            return ops.clip(ops.floor(x + 0.5) if eight_bit else x, 0.0, 255.0)

        if horizontal_pass_first(height, width, new_h, new_w):
            x = resize(x, height, new_w)[:, :, left : left + size]
            x = resize(x, new_h, size)[:, top : top + size]
        else:
            x = resize(x, new_h, width)[:, top : top + size]
            x = resize(x, size, new_w)[:, :, left : left + size]
        if has_alpha:  # RGBa -> RGBA (c * 255 // a), then drop alpha
            rgb, alpha = x[..., :3], x[..., 3:]
            scaled = ops.minimum(ops.floor(rgb * 255.0 / ops.maximum(alpha, 1.0)), 255.0)
            x = ops.where((alpha == 0.0) | (alpha == 255.0), rgb, scaled)
        mean = ops.convert_to_tensor(_MEAN32)
        std = ops.convert_to_tensor(_STD32)
        return (x / 255.0 - mean) / std  # (B, S, S, 3)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) == 4 else 1
        return (batch, self.image_size, self.image_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size})
        return config
