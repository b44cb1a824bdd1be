"""open_clip's training transform in-graph: random resized crop, bicubic.

torchvision `RandomResizedCrop(size, scale=(0.9, 1.0))` on a PIL image: a
box drawn as `RandomResizedCrop.get_params` does, then `graph.resized_crop_tf`.

Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
    >>> ds = ds.map(lambda im: random_resized_crop_tf(im, 224))
"""

from keras_clip.preprocessing.graph import resized_crop_tf
from keras_clip.preprocessing.rules import MEAN, STD


def random_crop_box_tf(height, width, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
    """torchvision `RandomResizedCrop.get_params` in-graph: `(top, left, h, w)`.

    Ten candidate boxes of area `scale` x image area and aspect `ratio`
    (log-uniform); the first that fits wins, else a center crop clamped to
    `ratio`. `seed`: None (stateful ops) or a shape-(2,) int seed (stateless).
    """
    import tensorflow as tf

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
    fb_w = tf.where(in_ratio > max(ratio), tf.round(height * max(ratio)), width)
    fb_h = tf.where(in_ratio < min(ratio), tf.round(width / min(ratio)), height)
    fallback = tf.stack([tf.floor((height - fb_h) / 2), tf.floor((width - fb_w) / 2), fb_h, fb_w])
    chosen = tf.stack([top[first], left[first], h[first], w[first]])
    box = tf.where(tf.reduce_any(fits), chosen, fallback)
    return tuple(tf.unstack(tf.cast(box, tf.int32)))


def random_resized_crop_tf(
    image_uint8, image_size, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), seed=None, mean=MEAN,
    std=STD
):
    """open_clip's training transform in-graph: random resized crop, bicubic.

    Returns float32 `(S, S, 3)` normalised by `mean` / `std` (the weights'
    values: `model.config.preprocessing`). `seed`: None or a shape-(2,) int
    seed for stateless sampling.

    Example:
        >>> import tensorflow as tf
        >>> ds = tf.data.Dataset.from_tensors(tf.zeros((300, 400, 3), tf.uint8))
        >>> ds = ds.map(lambda im: random_resized_crop_tf(im, 224))
    """
    import tensorflow as tf

    if not (0 < scale[0] <= scale[1] <= 1.0) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(
            f"Expected 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]; "
            f"received scale={scale}, ratio={ratio}."
        )
    image = tf.convert_to_tensor(image_uint8)
    shape = tf.shape(image)
    top, left, h, w = random_crop_box_tf(shape[0], shape[1], scale, ratio, seed)
    return resized_crop_tf(image, top, left, h, w, image_size, mean, std)
