"""Embeddings for evaluation: batched image and text encoding into numpy arrays.

Works with a ``keras_clip.CLIP`` or any object exposing ``encode_image``,
``encode_text`` and ``logit_scale`` (what the evaluation functions need).

Example:
    >>> from keras_clip.evaluation import encode_images, encode_texts
    >>> image_features = encode_images(model, images, batch_size=64)      # (N, D)
    >>> text_features = encode_texts(model, ["a photo of a cat"], normalize=True)
"""

import numpy as np


def to_numpy(x):
    """A numpy array from numpy, a list or any backend tensor."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and not hasattr(x, "__array_namespace__"):
        try:
            return np.asarray(x.numpy())
        except Exception:  # noqa: BLE001 - e.g. a torch tensor that requires grad
            pass
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception:  # noqa: BLE001 - plain Python sequences and scalars
        return np.asarray(x)


def l2_normalize(x, axis=-1, eps=1e-12):
    """``x / ||x||`` along ``axis`` in float32 (rows of zeros stay zero).

    Example:
        >>> l2_normalize(np.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, eps)


def logit_scale_of(model):
    """``model.logit_scale`` as a Python float (a property, a method, a tensor or a number)."""
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        raise ValueError(
            f"The model ({type(model).__name__}) has no `logit_scale`; expected a "
            "keras_clip.CLIP or an object with encode_image, encode_text and logit_scale.")
    if callable(scale) and not hasattr(scale, "shape"):
        scale = scale()
    return float(np.asarray(to_numpy(scale)).reshape(-1)[0])


def progress(iterable, total=None, desc=None, verbose=False):
    """``tqdm(iterable)`` when ``verbose`` and tqdm is installed, else ``iterable``."""
    if not verbose:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)


def _check_model(model, method):
    if not callable(getattr(model, method, None)):
        raise ValueError(
            f"The model ({type(model).__name__}) has no `{method}` method; expected a "
            "keras_clip.CLIP or an object with encode_image, encode_text and logit_scale.")


def _maybe_preprocess(model, images):
    """uint8 images are preprocessed for the model (``ImagePreprocessor``); float pass."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        return images.astype(np.float32, copy=False)
    from keras_clip.preprocessing import ImagePreprocessor

    if hasattr(getattr(model, "config", None), "preprocessing"):
        return ImagePreprocessor.for_model(model)(images)  # the weights' mean/std/resize
    size = getattr(model, "image_size", None) or images.shape[1]
    return ImagePreprocessor(int(size))(images)


def _padded_calls(fn, items, batch_size):
    """``fn`` on equal-size chunks of ``items`` (the last padded by repeating its final
    row, the padding's outputs dropped): one input shape, so one trace/compile."""
    size = int(batch_size)
    outputs = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        n = len(chunk)
        if n < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - n, axis=0)])
        outputs.append(to_numpy(fn(chunk))[:n])
    return outputs


def iterate_batches(data):
    """Yields ``(images, labels_or_None)`` from a dataset or iterable of batches.

    A batch is a dict with ``"images"`` (and optionally ``"labels"``), an
    ``(images, labels)`` tuple, or an images array. ``tf.data`` datasets are
    read with ``as_numpy_iterator()``.
    """
    iterator = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else data
    for batch in iterator:
        if isinstance(batch, dict):
            if "images" not in batch:
                raise ValueError(
                    f"Dataset batches must hold 'images'; received keys {sorted(batch)}.")
            yield batch["images"], batch.get("labels")
        elif isinstance(batch, (tuple, list)):
            yield batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            yield batch, None


def is_array_like(x):
    """True for numpy arrays and backend tensors (things with a shape), not datasets."""
    return isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "dtype")
                                         and not hasattr(x, "as_numpy_iterator"))


def encode_images(model, images, batch_size=64, normalize=False, verbose=False,
                  return_labels=False):
    """Image embeddings ``(N, D)`` float32 from ``model.encode_image``, in batches.

    Args:
        model: a ``keras_clip.CLIP`` (or an object with ``encode_image``).
        images: preprocessed float32 ``(N, S, S, 3)`` (uint8 images are run
            through ``ImagePreprocessor.for_model(model)`` first), or a
            dataset / iterable of batches (see ``iterate_batches``).
        batch_size: images per ``encode_image`` call for arrays.
        normalize: L2-normalise each embedding.
        verbose: show a tqdm progress bar.
        return_labels: also return the labels read from the dataset batches
            (``None`` when the input is an array or batches have none).

    Example:
        >>> features = encode_images(model, images, batch_size=32, normalize=True)
    """
    _check_model(model, "encode_image")
    if batch_size is None or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    chunks, labels = [], []
    if is_array_like(images):
        images = to_numpy(images)
        if images.ndim != 4:
            raise ValueError(f"images must be a (N, S, S, 3) batch; received shape "
                             f"{images.shape}.")
        step = max(1, min(int(batch_size), len(images)))
        for start in progress(range(0, len(images), step), -(-len(images) // step),
                              "image embeddings", verbose):
            batch = _maybe_preprocess(model, images[start:start + step])
            chunks += _padded_calls(model.encode_image, batch, step)
        labels = None
    else:
        size = None  # batches smaller than the first are padded to its size (one shape)
        for batch, batch_labels in progress(iterate_batches(images), None,
                                            "image embeddings", verbose):
            batch = _maybe_preprocess(model, batch)
            size = size or len(batch)
            chunks += _padded_calls(model.encode_image, batch, max(size, len(batch)))
            if batch_labels is not None:
                labels.append(np.asarray(batch_labels).reshape(-1))
        labels = np.concatenate(labels).astype(np.int64) if labels else None
    if not chunks:
        raise ValueError("Received no images; expected at least one image to encode.")
    features = np.concatenate(chunks).astype(np.float32)
    if labels is not None and len(labels) != len(features):
        raise ValueError(f"The dataset gave {len(labels)} labels for {len(features)} images; "
                         "expected one label per image.")
    if normalize:
        features = l2_normalize(features)
    return (features, labels) if return_labels else features


def default_tokenizer(model):
    """``CLIPTokenizer`` with the model's context length (77 when it has none)."""
    from keras_clip.tokenizer import CLIPTokenizer

    return CLIPTokenizer(context_length=int(getattr(model, "context_length", 77) or 77))


def encode_texts(model, texts, tokenizer=None, batch_size=256, normalize=False,
                 verbose=False):
    """Text embeddings ``(N, D)`` float32 from strings or token ids, in batches.

    Args:
        model: a ``keras_clip.CLIP`` (or an object with ``encode_text``).
        texts: a list of str, or int token ids ``(N, L)``.
        tokenizer: callable list of str -> int ``(B, L)``; default
            ``CLIPTokenizer`` with the model's context length.
        batch_size: texts per ``encode_text`` call.
        normalize: L2-normalise each embedding.
        verbose: show a tqdm progress bar.

    Example:
        >>> emb = encode_texts(model, ["a photo of a dog", "a photo of a cat"])
    """
    _check_model(model, "encode_text")
    if batch_size is None or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    if isinstance(texts, str):
        texts = [texts]
    is_ids = is_array_like(texts) and np.issubdtype(to_numpy(texts).dtype, np.integer)
    if is_ids:
        texts = to_numpy(texts).astype(np.int32)
        if texts.ndim != 2:
            raise ValueError(f"token ids must be (N, L); received shape {texts.shape}.")
    else:
        texts = [str(t) for t in texts]
        tokenizer = tokenizer or default_tokenizer(model)
    if len(texts) == 0:
        raise ValueError("Received no texts; expected at least one text to encode.")
    chunks = []
    step = min(int(batch_size), len(texts))
    for start in progress(range(0, len(texts), step), -(-len(texts) // step),
                          "text embeddings", verbose):
        batch = texts[start:start + step]
        ids = batch if is_ids else np.asarray(to_numpy(tokenizer(batch)), np.int32)
        chunks += _padded_calls(model.encode_text, ids, step)
    features = np.concatenate(chunks).astype(np.float32)
    return l2_normalize(features) if normalize else features


def embed_dataset(model, dataset, normalize=False, verbose=False):
    """Encodes a dataset of ``{"images", "token_ids"[, "labels"]}`` batches.

    For the ``keras_clip.data`` pipelines (``webdataset_dataset``, ``csv_dataset``,
    ``SyntheticShapes.as_tf_dataset``; use ``training=False``): every image is
    paired with the caption at the same index.

    Returns:
        ``{"image_embeddings": (N, D), "text_embeddings": (N, D) or None,
        "labels": (N,) or None}``.

    Example:
        >>> ds = webdataset_dataset("val/*.tar", 224, 64, training=False)
        >>> out = embed_dataset(model, ds, normalize=True)
    """
    _check_model(model, "encode_image")
    iterator = dataset.as_numpy_iterator() if hasattr(dataset, "as_numpy_iterator") else dataset
    images, texts, labels = [], [], []
    for batch in progress(iterator, None, "embeddings", verbose):
        if not isinstance(batch, dict) or "images" not in batch:
            raise ValueError("embed_dataset expects batches that are dicts with 'images' "
                             f"(and 'token_ids'); received {type(batch).__name__}.")
        images.append(to_numpy(model.encode_image(_maybe_preprocess(model, batch["images"]))))
        if "token_ids" in batch:
            texts.append(to_numpy(model.encode_text(np.asarray(batch["token_ids"], np.int32))))
        if "labels" in batch:
            labels.append(np.asarray(batch["labels"]).reshape(-1))
    if not images:
        raise ValueError("The dataset is empty; expected at least one batch.")
    out = {
        "image_embeddings": np.concatenate(images).astype(np.float32),
        "text_embeddings": np.concatenate(texts).astype(np.float32) if texts else None,
        "labels": np.concatenate(labels).astype(np.int64) if labels else None,
    }
    if normalize:
        for key in ("image_embeddings", "text_embeddings"):
            if out[key] is not None:
                out[key] = l2_normalize(out[key])
    return out
