"""Image-text retrieval: recall@K in both directions, several captions per image allowed.

Captions are tied to images by ``image_index`` (caption ``j`` describes image
``image_index[j]``), as in MS-COCO / Flickr30k (five captions per image).

- text -> image: caption ``j`` is a hit at K when its image is among the K
  images most similar to it.
- image -> text: image ``i`` is a hit at K when at least one of its captions is
  among the K captions most similar to it.

Ties with a wrong item count against the query (a pessimistic rank), so a
degenerate model (all scores equal) scores recall 0 rather than a lucky value.

Example:
    >>> from keras_clip.evaluation import retrieval_metrics
    >>> retrieval_metrics(image_embeddings, text_embeddings, image_index=[0, 0, 1, 1])
    {'image_to_text_recall@1': ..., 'text_to_image_recall@1': ..., ...}
"""

import numpy as np

from keras_clip.evaluation.features import (
    encode_images,
    encode_texts,
    is_array_like,
    l2_normalize,
    to_numpy,
)


def _check_index(image_index, num_images, num_texts):
    if image_index is None:
        if num_images != num_texts:
            raise ValueError(
                f"Received {num_images} images and {num_texts} texts without image_index; "
                "expected equal counts (one caption per image) or an image_index "
                "giving the image of each caption.")
        return np.arange(num_texts)
    image_index = np.asarray(to_numpy(image_index)).reshape(-1)
    if len(image_index) != num_texts:
        raise ValueError(f"image_index has {len(image_index)} entries for {num_texts} texts; "
                         "expected one image index per text.")
    if not np.issubdtype(image_index.dtype, np.integer):
        raise ValueError(f"image_index must hold ints; received dtype {image_index.dtype}.")
    if num_texts and (image_index.min() < 0 or image_index.max() >= num_images):
        raise ValueError(f"image_index values must lie in [0, {num_images}); received values "
                         f"from {image_index.min()} to {image_index.max()}.")
    return image_index.astype(np.int64)


def _check_ks(ks):
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive ints such as (1, 5, 10); received {ks}.")
    return ks


def retrieval_ranks(similarity, image_index=None, block_size=256):
    """0-based ranks of the correct items from a similarity matrix ``(N_images, N_texts)``.

    Returns:
        ``(image_to_text, text_to_image)``: for each image with at least one
        caption, the number of wrong captions scoring at least as high as its
        best caption (images without captions are left out); for each caption,
        the number of wrong images scoring at least as high as its own image.

    Example:
        >>> retrieval_ranks(np.eye(2))
        (array([0, 0]), array([0, 0]))
    """
    similarity = np.asarray(to_numpy(similarity))
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be (N_images, N_texts); received shape "
                         f"{similarity.shape}.")
    num_images, num_texts = similarity.shape
    image_index = _check_index(image_index, num_images, num_texts)
    correct = similarity[image_index, np.arange(num_texts)].astype(np.float64)  # (N_t,)
    i2t = np.zeros(num_images, np.int64)
    has_caption = np.zeros(num_images, bool)
    t2i = np.zeros(num_texts, np.int64)
    for start in range(0, num_images, block_size):  # row blocks bound the memory
        rows = np.arange(start, min(start + block_size, num_images))
        sim = similarity[rows].astype(np.float64)  # (b, N_t)
        owns = image_index[None, :] == rows[:, None]  # (b, N_t): caption j is of image i
        wrong = np.where(owns, -np.inf, sim)
        best = np.where(owns, sim, -np.inf).max(axis=1)  # (b,) best own caption
        has_caption[rows] = owns.any(axis=1)
        i2t[rows] = (wrong >= best[:, None]).sum(axis=1)
        t2i += (wrong >= correct[None, :]).sum(axis=0)
    return i2t[has_caption], t2i


def recall_at_k(similarity, image_index=None, ks=(1, 5, 10)):
    """Recall@K both ways from a similarity matrix ``(N_images, N_texts)``.

    Returns:
        ``{"image_to_text_recall@K", "text_to_image_recall@K" (for each K),
        "image_to_text_median_rank", "text_to_image_median_rank" (1-based),
        "num_images", "num_texts"}``.

    Example:
        >>> recall_at_k(np.eye(3), ks=(1,))["text_to_image_recall@1"]
        1.0
    """
    ks = _check_ks(ks)
    i2t, t2i = retrieval_ranks(similarity, image_index)
    out = {}
    for name, ranks in (("image_to_text", i2t), ("text_to_image", t2i)):
        for k in ks:
            out[f"{name}_recall@{k}"] = float(np.mean(ranks < k)) if len(ranks) else float("nan")
    out["image_to_text_median_rank"] = float(np.median(i2t) + 1) if len(i2t) else float("nan")
    out["text_to_image_median_rank"] = float(np.median(t2i) + 1) if len(t2i) else float("nan")
    out["num_images"], out["num_texts"] = int(np.shape(similarity)[0]), len(t2i)
    return out


def retrieval_metrics(image_embeddings, text_embeddings, image_index=None, ks=(1, 5, 10),
                      normalize=True):
    """Recall@K both ways from embeddings (cosine similarity when ``normalize``).

    Args:
        image_embeddings: ``(N_images, D)``.
        text_embeddings: ``(N_texts, D)``.
        image_index: ``(N_texts,)`` int, the image of each caption; default
            ``arange(N)`` (one caption per image, same order).
        ks: the K of recall@K.
        normalize: L2-normalise both sides first (cosine similarity).

    Returns:
        As ``recall_at_k``.

    Example:
        >>> m = retrieval_metrics(img, txt, image_index=np.repeat(np.arange(100), 5))
        >>> m["text_to_image_recall@5"]
    """
    images = np.asarray(to_numpy(image_embeddings), dtype=np.float32)
    texts = np.asarray(to_numpy(text_embeddings), dtype=np.float32)
    if images.ndim != 2 or texts.ndim != 2 or images.shape[1] != texts.shape[1]:
        raise ValueError(f"Expected image embeddings (N_images, D) and text embeddings "
                         f"(N_texts, D) with the same D; received shapes {images.shape} "
                         f"and {texts.shape}.")
    if normalize:
        images, texts = l2_normalize(images), l2_normalize(texts)
    return recall_at_k(images @ texts.T, image_index, ks)


def evaluate_retrieval(model, images, texts=None, image_index=None, tokenizer=None,
                       batch_size=64, ks=(1, 5, 10), verbose=False):
    """Encodes images and captions with ``model`` and reports recall@K both ways.

    Args:
        model: a ``keras_clip.CLIP``.
        images: preprocessed images ``(N_images, S, S, 3)``, a ``PairedData``
            (``keras_clip.evaluation.datasets``; ``texts`` and ``image_index``
            then come from it), or a dataset of ``{"images", "token_ids"}``
            batches (one caption per image, e.g. ``webdataset_dataset(...,
            training=False)``).
        texts: captions (list of str) or token ids ``(N_texts, L)``.
        image_index: ``(N_texts,)`` image of each caption (default one each).
        tokenizer: for str captions; default ``CLIPTokenizer``.
        batch_size: items per encode call.
        ks: the K of recall@K.

    Example:
        >>> data = synthetic_pairs(200, image_size=32, seed=3)
        >>> evaluate_retrieval(model, data)["text_to_image_recall@1"]
    """
    if hasattr(images, "captions") and hasattr(images, "image_index"):
        texts, image_index, images = images.captions, images.image_index, images.images
    if texts is None:
        if is_array_like(images):
            raise ValueError("texts is None; expected captions (or token ids) for the images, "
                             "or a dataset of {'images', 'token_ids'} batches.")
        from keras_clip.evaluation.features import embed_dataset

        out = embed_dataset(model, images, normalize=True, verbose=verbose)
        if out["text_embeddings"] is None:
            raise ValueError("The dataset batches hold no 'token_ids'; expected "
                             "{'images', 'token_ids'} batches.")
        return retrieval_metrics(out["image_embeddings"], out["text_embeddings"],
                                 image_index, ks)
    image_features = encode_images(model, images, batch_size, normalize=True, verbose=verbose)
    text_features = encode_texts(model, texts, tokenizer, batch_size, normalize=True,
                                 verbose=verbose)
    return retrieval_metrics(image_features, text_features, image_index, ks)
