"""Zero-shot classification with prompt ensembling (Radford et al., 2021, section 3.1.4).

For each class, every template is filled with the class name and embedded; the
embeddings are L2-normalised, averaged, and the mean renormalised: one unit
vector per class. An image is classified by the cosine similarity of its
normalised embedding with those vectors, times the model's logit scale.

Example:
    >>> import keras_clip
    >>> from keras_clip.evaluation import ZeroShotClassifier
    >>> model = keras_clip.from_preset("vit_b32")
    >>> clf = ZeroShotClassifier(model, ["cat", "dog"], templates="openai_imagenet_7")
    >>> labels, probs = clf.predict(images, return_probabilities=True)
    >>> clf.evaluate(images, labels)          # {"top1": ..., "top5": ..., ...}
"""

import warnings

import numpy as np

from keras_clip.evaluation.features import (
    default_tokenizer,
    encode_images,
    encode_texts,
    is_array_like,
    l2_normalize,
    logit_scale_of,
    to_numpy,
)
from keras_clip.evaluation.templates import resolve_templates


def check_class_names(class_names):
    """A list of non-empty class-name strings; ``ValueError`` otherwise."""
    if isinstance(class_names, str) or class_names is None:
        raise ValueError("class_names must be a sequence of str such as ['cat', 'dog']; "
                         f"received {class_names!r}.")
    class_names = list(class_names)
    if not class_names:
        raise ValueError("class_names is empty; expected at least one class name.")
    bad = [c for c in class_names if not isinstance(c, str) or not c.strip()]
    if bad:
        raise ValueError(f"class_names must be non-empty str; received {bad[:5]!r}.")
    return class_names


def zero_shot_weights(model, class_names, templates="openai_imagenet", tokenizer=None,
                      batch_size=256, verbose=False):
    """Class embeddings ``(C, D)`` by prompt ensembling (unit rows).

    ``w_c = normalize(mean_t normalize(encode_text(template_t.format(c))))``.

    Example:
        >>> w = zero_shot_weights(model, ["cat", "dog"], ["a photo of a {}."])
        >>> w.shape  # (2, embed_dim)
    """
    class_names = check_class_names(class_names)
    templates = resolve_templates(templates)
    texts = [t.format(c) for c in class_names for t in templates]  # class-major
    embeddings = encode_texts(model, texts, tokenizer=tokenizer, batch_size=batch_size,
                              normalize=True, verbose=verbose)  # (C * T, D)
    embeddings = embeddings.reshape(len(class_names), len(templates), -1)  # (C, T, D)
    return l2_normalize(embeddings.mean(axis=1))  # (C, D)


def top_k_accuracy(logits, labels, ks=(1, 5)):
    """``{k: fraction of rows whose label is among the k highest logits}``.

    Ties with the true class count against it. ``k`` above the number of
    classes counts every row as correct.

    Example:
        >>> top_k_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), [1, 1], ks=(1,))
        {1: 0.5}
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or len(labels) != len(logits):
        raise ValueError(f"Expected logits (N, C) and N labels; received logits of shape "
                         f"{logits.shape} and {len(labels)} labels.")
    if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}); received values from "
                         f"{labels.min()} to {labels.max()}.")
    true = logits[np.arange(len(labels)), labels][:, None]
    # Rank of the true class: the other classes scoring at least as high (ties count against).
    rank = (logits >= true).sum(axis=1) - 1  # (N,)
    return {int(k): float(np.mean(rank < k)) if len(labels) else float("nan") for k in ks}


class ZeroShotClassifier:
    """Zero-shot image classifier from class names and prompt templates.

    Args:
        model: a ``keras_clip.CLIP`` (or any object with ``encode_image``,
            ``encode_text`` and ``logit_scale``).
        class_names: the class names, in label order.
        templates: a template set name (``"openai_imagenet"``: 80 templates,
            ``"openai_imagenet_7"``, ``"simple"``, ``"shapes"``), one template
            string with ``{}``, or a list of them.
        tokenizer: callable list of str -> int ``(B, L)``; default
            ``keras_clip.CLIPTokenizer`` with the model's context length.
        batch_size: texts per ``encode_text`` call and images per
            ``encode_image`` call.
        verbose: tqdm progress bars: ``"auto"`` (the default) shows them for
            jobs of more than one batch (prompts, or images given as an
            array), ``True`` always, ``False``/``0`` never.

    Attributes:
        class_embeddings: ``(C, D)`` float32 unit vectors, one per class.
        logit_scale: the model's logit scale at construction (a float).

    Example:
        >>> clf = ZeroShotClassifier(model, ["red circle", "blue star"], templates="shapes")
        >>> clf.predict(images)                  # int labels (N,)
        >>> clf.evaluate(images, labels)["top1"]
    """

    def __init__(self, model, class_names, templates="openai_imagenet", tokenizer=None,
                 batch_size=256, verbose="auto"):
        self.model = model
        self.class_names = check_class_names(class_names)
        if len(self.class_names) == 1:
            warnings.warn(f"ZeroShotClassifier got one class ({self.class_names[0]!r}): every "
                          "image gets probability 1.0 for it, which says nothing. Pass at least "
                          "two class names (e.g. add the alternatives or a background class).",
                          stacklevel=2)
        self.templates = resolve_templates(templates)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
        if verbose != "auto" and not isinstance(verbose, (bool, int, np.integer)):
            raise ValueError(f"verbose must be 'auto', True or False; received {verbose!r}.")
        self.batch_size = int(batch_size)
        self.verbose = verbose
        self.tokenizer = tokenizer or default_tokenizer(model)
        self.logit_scale = logit_scale_of(model)
        prompts = len(self.class_names) * len(self.templates)
        self.class_embeddings = zero_shot_weights(
            model, self.class_names, self.templates, self.tokenizer, self.batch_size,
            self._show_progress(prompts))

    def _show_progress(self, count):
        """Whether a job of `count` items (None: unknown) shows a progress bar."""
        if self.verbose == "auto":
            return count is not None and count > self.batch_size
        return bool(self.verbose)

    def _encode_images(self, images, **kwargs):
        count = len(images) if is_array_like(images) else None
        return encode_images(self.model, images, self.batch_size,
                             verbose=self._show_progress(count), **kwargs)

    @property
    def num_classes(self):
        return len(self.class_names)

    def logits_from_features(self, image_features):
        """Image embeddings ``(N, D)`` -> logits ``(N, C)`` (normalised here)."""
        features = l2_normalize(to_numpy(image_features))
        if features.ndim != 2 or features.shape[1] != self.class_embeddings.shape[1]:
            raise ValueError(
                f"Expected image features (N, {self.class_embeddings.shape[1]}); received "
                f"shape {features.shape}.")
        return self.logit_scale * features @ self.class_embeddings.T  # (N, C)

    def logits(self, images):
        """Preprocessed images ``(N, S, S, 3)`` (or a dataset) -> logits ``(N, C)``."""
        return self.logits_from_features(self._encode_images(images))

    def predict_proba(self, images):
        """Class probabilities ``(N, C)``: the softmax of the logits."""
        logits = self.logits(images)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, images, return_probabilities=False):
        """Predicted labels ``(N,)``; with ``return_probabilities``, ``(labels, probs)``.

        Example:
            >>> labels, probs = clf.predict(images, return_probabilities=True)
            >>> [clf.class_names[i] for i in labels]
        """
        probs = self.predict_proba(images)
        labels = probs.argmax(axis=1)
        return (labels, probs) if return_probabilities else labels

    def evaluate(self, images, labels=None, top_k=(1, 5)):
        """Top-k accuracies on labelled images.

        Args:
            images: preprocessed images ``(N, S, S, 3)`` with ``labels`` ``(N,)``,
                or a dataset / iterable of batches holding ``"images"`` and
                ``"labels"`` (e.g. ``SyntheticShapes.as_tf_dataset(...,
                include_labels=True, training=False)``), ``labels`` then None.
            labels: int labels indexing ``class_names``.
            top_k: the k of the reported ``"top{k}"`` accuracies.

        Returns:
            ``{"top1": float, "top5": float, "mean_per_class_recall": float,
            "num_samples": int}``.

        Example:
            >>> clf.evaluate(images, labels)
            {'top1': 0.93, 'top5': 1.0, 'mean_per_class_recall': 0.93, 'num_samples': 600}
        """
        if is_array_like(images):
            if labels is None:
                raise ValueError("labels is None; expected one int label per image "
                                 "(or pass a dataset whose batches hold 'labels').")
            features = self._encode_images(images)
        else:
            features, found = self._encode_images(images, return_labels=True)
            if labels is None:
                if found is None:
                    raise ValueError("The dataset batches hold no 'labels'; expected dicts "
                                     "with 'images' and 'labels' or (images, labels) pairs.")
                labels = found
        labels = np.asarray(to_numpy(labels)).reshape(-1)
        if len(labels) != len(features):
            raise ValueError(f"Received {len(features)} images and {len(labels)} labels; "
                             "expected one label per image.")
        logits = self.logits_from_features(features)
        accuracies = top_k_accuracy(logits, labels, top_k)
        predicted = logits.argmax(axis=1)
        recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
        result = {f"top{k}": acc for k, acc in accuracies.items()}
        result["mean_per_class_recall"] = float(np.mean(recalls))
        result["num_samples"] = int(len(labels))
        return result
