"""Linear-probe evaluation as in the CLIP paper (Radford et al., 2021, appendix A.3).

Frozen image features, a scikit-learn ``LogisticRegression`` (L-BFGS, L2
penalty). The inverse regularisation strength ``C`` is chosen on a validation
split by OpenAI's parametric binary search: start from ``C`` in
``10^-6, 10^-4, ..., 10^6`` and, around the best value, repeatedly halve the
log-step until it reaches ``1 / steps_per_decade`` decades (8 steps per decade,
as the paper). The classifier is then refit on train + validation with that
``C`` and scored on the test split.

Example:
    >>> from keras_clip.evaluation import linear_probe
    >>> result = linear_probe(train_x, train_y, test_x, test_y)
    >>> result["accuracy"], result["C"]
"""

import math
import warnings

import numpy as np

from keras_clip.evaluation.features import encode_images, is_array_like, to_numpy


_SMALL_PROBLEM = 2_000_000  # features (N * D) below which the fits use one thread


def _check_xy(features, labels, name):
    features = np.asarray(to_numpy(features), dtype=np.float32)
    labels = np.asarray(to_numpy(labels)).reshape(-1)
    if features.ndim != 2:
        raise ValueError(f"{name} features must be (N, D); received shape {features.shape}.")
    if len(features) != len(labels):
        raise ValueError(f"Received {len(features)} {name} features and {len(labels)} "
                         f"{name} labels; expected one label per feature row.")
    if len(features) == 0:
        raise ValueError(f"The {name} split is empty; expected at least one sample.")
    return features, labels


def _fit(x, y, c, max_iter, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from threadpoolctl import threadpool_limits

    clf = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter, random_state=seed)
    # Small problems run several times faster on one BLAS thread (no sync overhead).
    threads = 1 if x.size < _SMALL_PROBLEM else None
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def _split(x, y, val_fraction, seed):
    """A stratified train/validation split (plain random when a class is too small)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); received {val_fraction!r}.")
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    try:
        return train_test_split(x, y, test_size=val_fraction, random_state=seed,
                                stratify=stratify)
    except ValueError:  # too few samples per class for a stratified split
        return train_test_split(x, y, test_size=val_fraction, random_state=seed)


def search_c(train_x, train_y, val_x, val_y, c_range=(1e-6, 1e6), steps_per_decade=8,
             max_iter=1000, seed=0, verbose=False):
    """OpenAI's parametric binary search over log10(C) on a validation split.

    Returns:
        ``(best_c, best_val_accuracy, history)``, history a list of
        ``(C, validation accuracy)`` sorted by C. Among equal accuracies the
        C nearest 1 wins (sklearn's default; a plateau of perfect scores
        does not push C to an extreme).

    Example:
        >>> c, acc, history = search_c(train_x, train_y, val_x, val_y)
    """
    lo, hi = (math.log10(c) for c in c_range)
    if not lo < hi or steps_per_decade < 1:
        raise ValueError(f"Expected c_range=(low, high) with 0 < low < high and "
                         f"steps_per_decade >= 1; received {c_range}, {steps_per_decade}.")
    scores = {}

    def score(log_c):
        log_c = round(min(max(log_c, lo), hi), 6)
        if log_c not in scores:
            clf = _fit(train_x, train_y, 10.0 ** log_c, max_iter, seed)
            scores[log_c] = float(np.mean(clf.predict(val_x) == val_y))
            if verbose:
                print(f"linear probe: C=1e{log_c:+.3f} validation accuracy "
                      f"{scores[log_c]:.4f}")
        return scores[log_c]

    def best():  # highest accuracy; among ties the C nearest 1 (sklearn's default), then smaller
        return max(scores, key=lambda k: (scores[k], -abs(k), -k))

    step = 2.0
    grid = np.arange(lo, hi + 1e-9, step)
    for log_c in grid if len(grid) > 1 else (lo, hi):
        score(float(log_c))
    while step > 1.0 / steps_per_decade + 1e-12:
        step /= 2.0
        center = best()
        score(center - step)
        score(center + step)
    top = best()
    history = [(10.0 ** k, scores[k]) for k in sorted(scores)]
    return 10.0 ** top, scores[top], history


def linear_probe(train_features, train_labels, test_features, test_labels,
                 val_features=None, val_labels=None, val_fraction=0.2, c=None,
                 c_range=(1e-6, 1e6), steps_per_decade=8, max_iter=1000, seed=0,
                 verbose=False):
    """Logistic-regression probe on frozen features; ``C`` by validation search.

    Args:
        train_features, train_labels: ``(N, D)`` features and ``(N,)`` int labels.
        test_features, test_labels: the held-out split the accuracy is measured on.
        val_features, val_labels: the validation split for the search; default:
            ``val_fraction`` of the training split (stratified).
        c: skip the search and use this ``C``.
        c_range, steps_per_decade: the search range of ``C`` and its final
            resolution (OpenAI: 1e-6..1e6, 8 steps per decade).
        max_iter: L-BFGS iterations (OpenAI's example uses 1000).
        seed: the split's and the solver's random state.
        verbose: print each validation score.

    Returns:
        ``{"accuracy": test accuracy, "C": chosen C, "val_accuracy": its
        validation accuracy (None when ``c`` is given), "search": [(C, val acc)],
        "classifier": the LogisticRegression refit on train + validation}``.

    Example:
        >>> r = linear_probe(train_x, train_y, test_x, test_y)
        >>> print(f"{r['accuracy']:.3f} at C={r['C']:.3g}")
    """
    train_x, train_y = _check_xy(train_features, train_labels, "train")
    test_x, test_y = _check_xy(test_features, test_labels, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train features have {train_x.shape[1]} dimensions and test "
                         f"features {test_x.shape[1]}; expected the same.")
    if len(np.unique(train_y)) < 2:
        raise ValueError(f"The training labels hold {len(np.unique(train_y))} class; "
                         "expected at least 2 for a logistic-regression probe.")
    if (val_features is None) != (val_labels is None):
        raise ValueError("Pass both val_features and val_labels, or neither.")
    search, val_accuracy = [], None
    if c is None:
        if val_features is None:
            fit_x, val_x, fit_y, val_y = _split(train_x, train_y, val_fraction, seed)
        else:
            val_x, val_y = _check_xy(val_features, val_labels, "validation")
            fit_x, fit_y = train_x, train_y
        c, val_accuracy, search = search_c(fit_x, fit_y, val_x, val_y, c_range,
                                           steps_per_decade, max_iter, seed, verbose)
        if val_features is not None:  # refit on train + validation
            train_x = np.concatenate([train_x, val_x])
            train_y = np.concatenate([train_y, val_y])
    elif not c > 0:
        raise ValueError(f"c must be > 0; received {c!r}.")
    clf = _fit(train_x, train_y, float(c), max_iter, seed)
    accuracy = float(np.mean(clf.predict(test_x) == test_y))
    return {"accuracy": accuracy, "C": float(c), "val_accuracy": val_accuracy,
            "search": search, "classifier": clf}


def _features_and_labels(model, data, batch_size, verbose, name):
    """(features, labels) from (images, labels), ClassificationData or a dataset."""
    if data is None:
        return None, None
    if hasattr(data, "images") and hasattr(data, "labels"):
        data = (data.images, data.labels)
    if isinstance(data, tuple) and len(data) == 2 and is_array_like(data[0]):
        features = encode_images(model, data[0], batch_size, verbose=verbose)
        return features, data[1]
    features, labels = encode_images(model, data, batch_size, verbose=verbose,
                                     return_labels=True)
    if labels is None:
        raise ValueError(f"The {name} dataset has no labels; expected batches with "
                         "'images' and 'labels', or an (images, labels) pair.")
    return features, labels


def evaluate_linear_probe(model, train, test, val=None, batch_size=64, verbose=False,
                          **kwargs):
    """``linear_probe`` on the model's image embeddings of labelled image sets.

    Args:
        model: a ``keras_clip.CLIP`` (its image tower stays frozen).
        train, test, val: ``(images, labels)`` pairs, ``ClassificationData``
            (``keras_clip.evaluation.datasets``) or datasets of ``{"images",
            "labels"}`` batches; ``val`` is optional.
        batch_size: images per ``encode_image`` call.
        **kwargs: passed to ``linear_probe`` (``c``, ``max_iter``, ...).

    Example:
        >>> train = synthetic_classification(600, image_size=32, seed=1)
        >>> test = synthetic_classification(300, image_size=32, seed=2)
        >>> evaluate_linear_probe(model, train, test)["accuracy"]
    """
    train_x, train_y = _features_and_labels(model, train, batch_size, verbose, "train")
    test_x, test_y = _features_and_labels(model, test, batch_size, verbose, "test")
    val_x, val_y = _features_and_labels(model, val, batch_size, verbose, "validation")
    return linear_probe(train_x, train_y, test_x, test_y, val_x, val_y, verbose=verbose,
                        **kwargs)
