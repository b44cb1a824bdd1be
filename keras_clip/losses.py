"""CLIP's contrastive losses, in float32, global or local (sharded) form.

Two losses: the symmetric softmax cross-entropy of CLIP (`"softmax"`) and
SigLIP's pairwise sigmoid loss (`"sigmoid"`, Zhai et al. 2023, arXiv 2303.15343).

For a batch of `B` pairs the logits are `s * norm(img) @ norm(txt).T` and the
loss is the mean of the row-wise (image -> text) and column-wise (text ->
image) cross-entropies, the label of row `i` being `i`.

In data-parallel training each replica holds `b` of the `B` pairs. The
*local* form scores the replica's `b` images against all `B` gathered texts
and its `b` texts against all `B` gathered images (logits `b x B`, not
`B x B`); the per-pair losses of all replicas together are exactly the
per-pair losses of the global batch.

Example:
    >>> import numpy as np
    >>> from keras_clip.losses import clip_loss
    >>> images = np.eye(4, 8, dtype="float32")
    >>> float(clip_loss(images, images, logit_scale=100.0)) < 1e-6
    True
"""

from keras import ops

from keras_clip.layers.logit_scale import l2_normalize


def _check_pair(image_embeddings, text_embeddings, what="embeddings", same_batch=True):
    image_shape, text_shape = tuple(image_embeddings.shape), tuple(text_embeddings.shape)
    if len(image_shape) != 2 or len(text_shape) != 2:
        raise ValueError(
            f"Expected 2-D (batch, dim) image and text {what}, received shapes "
            f"{image_shape} and {text_shape}."
        )
    if None not in (image_shape[-1], text_shape[-1]) and image_shape[-1] != text_shape[-1]:
        raise ValueError(
            f"Image and text {what} must have the same width, received "
            f"{image_shape[-1]} and {text_shape[-1]}."
        )
    if same_batch and None not in (image_shape[0], text_shape[0]) and (
            image_shape[0] != text_shape[0]):
        raise ValueError(
            f"Expected as many images as texts, received {image_shape[0]} images "
            f"and {text_shape[0]} texts."
        )


def cross_entropy_at(logits, labels):
    """Per-row softmax cross-entropy in float32 of `logits (b, B)` at integer `labels (b,)`."""
    logits = ops.cast(logits, "float32")
    picked = ops.sum(logits * ops.one_hot(labels, ops.shape(logits)[1], dtype="float32"), axis=1)
    return ops.logsumexp(logits, axis=1) - picked  # (b,)


def local_contrastive_logits(
    image_embeddings, text_embeddings, all_image_embeddings, all_text_embeddings, logit_scale
):
    """The `b x B` logits of a shard: local images vs all texts, local texts vs all images.

    Args:
        image_embeddings, text_embeddings: this shard's embeddings `(b, D)`.
        all_image_embeddings, all_text_embeddings: the global batch `(B, D)`
            (this shard included, in replica order).
        logit_scale: the multiplier `s` (already `min(exp(t), 100)`).

    Returns:
        `(logits_per_image, logits_per_text)`, both `(b, B)` float32.

    Example:
        >>> import numpy as np
        >>> x = np.eye(4, 8, dtype="float32")
        >>> i2t, t2i = local_contrastive_logits(x[:2], x[:2], x, x, 10.0)
        >>> tuple(i2t.shape)
        (2, 4)
    """
    _check_pair(image_embeddings, text_embeddings)
    _check_pair(all_image_embeddings, all_text_embeddings, "gathered embeddings")
    scale = ops.cast(logit_scale, "float32")
    images, texts = l2_normalize(image_embeddings), l2_normalize(text_embeddings)
    all_images, all_texts = l2_normalize(all_image_embeddings), l2_normalize(all_text_embeddings)
    logits_per_image = scale * ops.matmul(images, ops.transpose(all_texts))  # (b, B)
    logits_per_text = scale * ops.matmul(texts, ops.transpose(all_images))  # (b, B)
    return logits_per_image, logits_per_text


def local_contrastive_loss(logits_per_image, logits_per_text, offset=0):
    """Per-pair losses `(b,)` of a shard whose pairs sit at `offset .. offset + b - 1`.

    Each entry is `(CE(image row) + CE(text row)) / 2`; the global CLIP loss is
    the sum of all shards' entries divided by the global batch size `B`.

    Example:
        >>> import numpy as np
        >>> logits = np.array([[9.0, 0.0, 0.0]], "float32")  # pair 0 of 3
        >>> float(local_contrastive_loss(logits, logits, offset=0)[0]) < 1e-3
        True
    """
    batch = ops.shape(logits_per_image)[0]
    labels = ops.arange(batch, dtype="int32") + ops.cast(offset, "int32")
    image_loss = cross_entropy_at(logits_per_image, labels)
    text_loss = cross_entropy_at(logits_per_text, labels)
    return 0.5 * (image_loss + text_loss)


def clip_loss_from_logits(logits_per_image):
    """Symmetric loss of square logits `(B, B)`: mean of row and column cross-entropy.

    Example:
        >>> import numpy as np
        >>> round(float(clip_loss_from_logits(np.zeros((4, 4), "float32"))), 4)  # ln 4
        1.3863
    """
    shape = tuple(logits_per_image.shape)
    if len(shape) != 2 or (None not in shape and shape[0] != shape[1]):
        raise ValueError(f"Expected square (B, B) logits, received shape {shape}.")
    logits = ops.cast(logits_per_image, "float32")
    return ops.mean(local_contrastive_loss(logits, ops.transpose(logits)))


def clip_loss(image_embeddings, text_embeddings, logit_scale):
    """CLIP loss of one device holding the whole batch (embeddings `(B, D)`, unnormalised).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
        >>> float(clip_loss(x, x, 100.0)) < 0.01
        True
    """
    i2t, t2i = local_contrastive_logits(
        image_embeddings, text_embeddings, image_embeddings, text_embeddings, logit_scale
    )
    return ops.mean(local_contrastive_loss(i2t, t2i))


def local_sigmoid_loss(image_embeddings, all_text_embeddings, logit_scale, logit_bias,
                       offset=0):
    """Per-image sums `(b,)` of SigLIP's pairwise loss: this shard's images vs all texts.

    Entry `i` is `-sum_j log sigmoid(z_ij * (s * <img_i, txt_j> + bias))` over
    the `B` gathered texts, `z_ij = 1` for the pair `j = offset + i` and `-1`
    otherwise (embeddings L2-normalised here). The global loss is the sum of
    all shards' entries divided by `B`, as open_clip's `SigLipLoss`; a shard
    only ever holds its `b x B` logits.

    Example:
        >>> import numpy as np
        >>> x = np.eye(2, 4, dtype="float32")
        >>> tuple(local_sigmoid_loss(x[:1], x, 10.0, -10.0).shape)
        (1,)
    """
    _check_pair(image_embeddings, all_text_embeddings, same_batch=False)
    images, texts = l2_normalize(image_embeddings), l2_normalize(all_text_embeddings)
    logits = ops.cast(logit_scale, "float32") * ops.matmul(images, ops.transpose(texts))
    logits = logits + ops.cast(logit_bias, "float32")  # (b, B)
    labels = ops.arange(ops.shape(logits)[0], dtype="int32") + ops.cast(offset, "int32")
    signs = 2.0 * ops.one_hot(labels, ops.shape(logits)[1], dtype="float32") - 1.0
    return -ops.sum(ops.log_sigmoid(signs * logits), axis=1)


def sigmoid_loss(image_embeddings, text_embeddings, logit_scale, logit_bias):
    """SigLIP loss of one device holding the whole batch (embeddings `(B, D)`, unnormalised).

    Equals open_clip's `SigLipLoss()(norm(img), norm(txt), s, bias)`.

    Example:
        >>> import numpy as np
        >>> x = np.eye(4, 8, dtype="float32")
        >>> float(sigmoid_loss(x, x, 100.0, 0.0)) < 1e-3
        True
    """
    per_image = local_sigmoid_loss(image_embeddings, text_embeddings, logit_scale, logit_bias)
    return ops.sum(per_image) / ops.cast(ops.shape(per_image)[0], "float32")


def in_batch_accuracy(logits, offset=0):
    """Fraction of rows of `logits (b, B)` whose argmax is their own pair `offset + i`.

    Example:
        >>> import numpy as np
        >>> float(in_batch_accuracy(np.eye(3, dtype="float32")))
        1.0
    """
    batch = ops.shape(logits)[0]
    labels = ops.arange(batch, dtype="int32") + ops.cast(offset, "int32")
    predicted = ops.cast(ops.argmax(logits, axis=1), "int32")
    return ops.mean(ops.cast(ops.equal(predicted, labels), "float32"))
