"""In-graph CLIP preprocessing for `tf.data` (any Keras backend), PIL-matching.

Antialiased bicubic resize (Keys cubic, a = -0.5, the kernel PIL uses) in
Pillow's two passes, order and uint8 rounding, RGBA resized premultiplied:
the `rules` module's rules. Only pixels within float error of a rounding
boundary differ from PIL, by one grey level (0.015 normalised); mean abs
difference ~5e-6 on the golden cases. Values outside `rules.pixel_rule` fail
a `tf.debugging.Assert` (eagerly: a ValueError).

Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
    >>> ds = ds.map(lambda im: center_crop_tf(im, 224))
"""

import types

from keras_clip.preprocessing import rules


def _tf():
    import tensorflow as tf

    return tf


def _xp():
    """The `rules` array namespace on tf ops."""
    tf = _tf()
    return types.SimpleNamespace(
        floor=tf.floor, minimum=tf.minimum, maximum=tf.maximum, where=tf.where,
        clip=tf.clip_by_value, cast=tf.cast,
    )


def check_values_tf(image, rule):
    """`image` once its values pass `rule`: a ValueError eagerly, a tf Assert in a graph."""
    tf = _tf()
    if rule not in rules.RANGES:
        return image
    finite = tf.reduce_all(tf.math.is_finite(image)) if rule == "float" else tf.constant(True)
    low, high = tf.reduce_min(image), tf.reduce_max(image)
    if tf.executing_eagerly():
        rules.check_values(rule, finite.numpy(), low.numpy(), high.numpy())
        return image
    limit, expected = rules.RANGES[rule]
    ok = finite & (low >= 0) & (high <= limit)
    check = tf.debugging.Assert(ok, [f"{expected}; received (min, max, finite)", low, high, finite])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def _checked_hwc(image):
    """An HWC tf image with shape checks attached; its static channel count (or None)."""
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
        raise rules.channel_error(channels)
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
        return tf.identity(image), channels


def _rgb_or_rgba(image, channels, has_alpha):
    """float32 HWC -> RGB (3 channels) or, with `has_alpha`, RGBA (opaque unless given)."""
    tf = _tf()
    if channels == 1:
        return tf.tile(image, [1, 1, 3])
    if channels is not None:
        return image if has_alpha or channels == 3 else image[:, :, :3]
    shape = tf.shape(image)
    rgb = tf.cond(
        tf.equal(shape[2], 1), lambda: tf.tile(image[:, :, :1], [1, 1, 3]), lambda: image[:, :, :3]
    )
    if not has_alpha:
        return rgb
    opaque = tf.fill([shape[0], shape[1], 1], 255.0)
    alpha = tf.cond(tf.equal(shape[2], 4), lambda: image[:, :, 3:4], lambda: opaque)
    return tf.concat([rgb, alpha], axis=-1)


def _prepare(image):
    """Checks an HWC tf image; returns (float32 pixels in [0, 255], eight_bit, has_alpha).

    8-bit images (all but float; see `rules.pixel_rule`) that may carry alpha
    come back as RGBa (premultiplied, 4 channels), as PIL resizes them.
    """
    tf = _tf()
    image, channels = _checked_hwc(image)
    rule = rules.pixel_rule(image.dtype.name)
    eight_bit = rule != "float"
    has_alpha = eight_bit and channels in (None, 4)
    image = rules.to_eight_bit_scale(check_values_tf(image, rule), rule, _xp())
    image = _rgb_or_rgba(image, channels, has_alpha)
    if has_alpha:
        rgb, alpha = image[:, :, :3], image[:, :, 3:]
        image = tf.concat([rules.premultiply(rgb, alpha, _xp()), alpha], axis=-1)
    return image, eight_bit, has_alpha


def _dim(x, i):
    return x.shape[i] if x.shape[i] is not None else _tf().shape(x)[i]


def _resize(image, new_h, new_w, eight_bit, crop=None):
    """`rules.two_pass_resize` with tf's antialiased bicubic as one pass."""
    tf = _tf()

    def one_pass(x, h, w):
        x = tf.image.resize(x, tf.stack([h, w]), method="bicubic", antialias=True)
        return rules.round_pass(x, eight_bit, _xp())

    height, width = _dim(image, 0), _dim(image, 1)
    return rules.two_pass_resize(image, height, width, new_h, new_w, one_pass, crop, cond=tf.cond)


def _finish(pixels, has_alpha, image_size, mean=rules.MEAN, std=rules.STD):
    """RGBa -> RGB if needed, then normalisation by `mean` / `std`; float32 (S, S, 3)."""
    tf = _tf()
    if has_alpha:
        pixels = rules.unpremultiply(pixels[:, :, :3], pixels[:, :, 3:], _xp())
    mean, std = rules.check_mean_std(mean, std)
    x = rules.normalize(pixels, tf.constant(mean), tf.constant(std))
    return tf.ensure_shape(x, [image_size, image_size, 3])


def _geometry(image, image_size, resize_mode):
    """`rules.geometry`: ints for static shapes (or squash), int32 tensors otherwise."""
    tf = _tf()
    height, width = _dim(image, 0), _dim(image, 1)
    static = isinstance(height, int) and isinstance(width, int)
    if static or resize_mode == "squash":
        return rules.geometry(height, width, image_size, resize_mode)
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    values = rules.geometry(height, width, image_size, resize_mode, minimum=tf.minimum)
    return tuple(tf.cast(v, tf.int32) for v in values)


def preprocess_tf(image_uint8, image_size, mean=rules.MEAN, std=rules.STD, resize_mode="shortest"):
    """In-graph eval transform for `tf.data`: float32 `(S, S, 3)` normalised.

    Antialiased bicubic resize (Pillow's pass order and uint8 rounding) of the
    shortest side to `image_size` then a center crop (`resize_mode="shortest"`),
    or of both sides straight to `image_size` (`"squash"`, open_clip's mode
    for DFN-5B weights); then `(x / 255 - mean) / std`. Pixel values follow
    `pixel_rule` (uint16 scaled by 1/257; float taken to be in [0, 1] and not
    rounded); values outside the rule fail a `tf.debugging.Assert`.

    Example:
        >>> import tensorflow as tf
        >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
        >>> ds = ds.map(lambda im: preprocess_tf(im, 224, resize_mode="squash"))
    """
    image_size = rules.check_size(image_size)
    resize_mode = rules.check_resize_mode(resize_mode)
    rules.check_mean_std(mean, std)
    image, eight_bit, has_alpha = _prepare(image_uint8)
    new_h, new_w, top, left = _geometry(image, image_size, resize_mode)
    if not isinstance(_dim(image, 0), int) or not isinstance(_dim(image, 1), int):
        image = _tf().ensure_shape(image, [None, None, image.shape[-1]])
    crop = None if resize_mode == "squash" else (top, left, image_size)
    pixels = _resize(image, new_h, new_w, eight_bit, crop=crop)
    return _finish(pixels, has_alpha, image_size, mean, std)


def center_crop_tf(image_uint8, image_size, mean=rules.MEAN, std=rules.STD):
    """`preprocess_tf` with `resize_mode="shortest"`: shortest side, center crop.

    Example:
        >>> import tensorflow as tf
        >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
        >>> ds = ds.map(lambda im: center_crop_tf(im, 224))
    """
    return preprocess_tf(image_uint8, image_size, mean, std, "shortest")


def resized_crop_tf(image_uint8, top, left, height, width, image_size, mean=rules.MEAN,
                    std=rules.STD):
    """Crops the box `(top, left, height, width)` and resizes it to `(S, S)`.

    torchvision's `F.resized_crop(..., BICUBIC)` on a PIL image, in-graph;
    returns float32 `(S, S, 3)` normalised by `mean` / `std`.

    Example:
        >>> import tensorflow as tf
        >>> x = resized_crop_tf(tf.zeros((64, 80, 3), tf.uint8), 2, 4, 60, 70, 32)
    """
    image_size = rules.check_size(image_size)
    image, eight_bit, has_alpha = _prepare(image_uint8)
    box = image[top : top + height, left : left + width]
    pixels = _resize(box, image_size, image_size, eight_bit)
    return _finish(pixels, has_alpha, image_size, mean, std)
