"""WiSE-FT (Wortsman et al. 2022): interpolate the zero-shot and the fine-tuned weights.

`wise_ft(zero_shot, fine_tuned, alpha)` is a new model whose every weight is
`(1 - alpha) * zero_shot + alpha * fine_tuned` (BatchNorm statistics too);
`alpha = 0` and `1` copy the two models exactly. `wise_ft_sweep` evaluates a
list of `alpha` on the fine-tuning task and on a shifted set and picks one.

Example:
    >>> zero_shot = keras_clip.from_preset("vit_b32")  # doctest: +SKIP
    >>> fine_tuned = keras_clip.from_preset("vit_b32"); ...fit...  # doctest: +SKIP
    >>> mixed = wise_ft(zero_shot, fine_tuned, alpha=0.5)  # doctest: +SKIP
"""

import numpy as np
from keras import ops

DEFAULT_ALPHAS = tuple(round(a, 1) for a in np.linspace(0, 1, 11))


def _named_weights(model):
    """`[(name, variable)]` in `model.weights` order, names prefixed by their top layer."""
    named, seen = [], set()
    for layer in model.layers:
        for variable in layer.weights:
            if id(variable) not in seen:
                seen.add(id(variable))
                named.append((f"{layer.name}/{variable.path}", variable))
    return named


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not (
            0 <= alpha <= 1):
        raise ValueError(f"`alpha` must be a number in [0, 1] (0: the zero-shot model, 1: the "
                         f"fine-tuned one); received {alpha!r}.")
    return float(alpha)


def matched_weights(zero_shot_model, fine_tuned_model):
    """`[(name, zero_shot_variable, fine_tuned_variable)]`; a `ValueError` names a mismatch.

    Example:
        >>> pairs = matched_weights(model_a, model_b)  # doctest: +SKIP
    """
    for which, model in (("zero_shot_model", zero_shot_model),
                         ("fine_tuned_model", fine_tuned_model)):
        if getattr(model, "lora_enabled", False):
            raise ValueError(f"{which} has unmerged LoRA adapters; call merge_lora() on it "
                             "before wise_ft.")
    first, second = _named_weights(zero_shot_model), _named_weights(fine_tuned_model)
    for index in range(max(len(first), len(second))):
        if index >= len(first) or index >= len(second):
            longer, extra = ((second, "fine_tuned_model") if index >= len(first)
                             else (first, "zero_shot_model"))
            name = longer[index][0]
            raise ValueError(f"wise_ft needs two models of the same architecture: the first "
                             f"mismatching weight is {name}, which only {extra} has "
                             f"({len(first)} vs {len(second)} weights).")
        (name_a, a), (name_b, b) = first[index], second[index]
        if name_a != name_b or tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"wise_ft needs two models of the same architecture: the first "
                             f"mismatching weight is {name_a} {tuple(a.shape)} in "
                             f"zero_shot_model vs {name_b} {tuple(b.shape)} in fine_tuned_model.")
    return [(name, a, b) for (name, a), (_, b) in zip(first, second)]


def _copy(model):
    return type(model).from_config(model.get_config())


def wise_ft(zero_shot_model, fine_tuned_model, alpha=0.5):
    """A new model with weights `(1 - alpha) * zero_shot + alpha * fine_tuned`.

    Args:
        zero_shot_model, fine_tuned_model: two Keras models of one architecture
            (two `keras_clip.CLIP`, or two `build_classifier` classifiers).
        alpha: the mixing coefficient in `[0, 1]`.

    Example:
        >>> mixed = wise_ft(zero_shot, fine_tuned, 0.5)  # doctest: +SKIP
    """
    alpha = _check_alpha(alpha)
    pairs = matched_weights(zero_shot_model, fine_tuned_model)
    mixed = _copy(zero_shot_model)
    targets = _named_weights(mixed)
    for (_, target), (_, a, b) in zip(targets, pairs):
        a, b = ops.convert_to_numpy(a), ops.convert_to_numpy(b)
        if alpha in (0.0, 1.0) or not np.issubdtype(a.dtype, np.floating):
            value = a if alpha < 0.5 else b  # the endpoints exactly
        else:
            value = ((1 - alpha) * a.astype(np.float64) + alpha * b).astype(a.dtype)
        target.assign(value)
    return mixed


def _evaluator(evaluation):
    if callable(evaluation):
        return evaluation
    images, labels = evaluation
    labels = np.asarray(labels).reshape(-1)

    def top1(model):
        logits = model.predict(images, batch_size=256, verbose=0)
        return float(np.mean(np.argmax(logits, axis=1) == labels))

    return top1


def wise_ft_sweep(zero_shot_model, fine_tuned_model, in_distribution, shifted,
                  alphas=DEFAULT_ALPHAS, tolerance=0.01):
    """Evaluates `wise_ft` at each alpha; returns `{"table": [...], "best_alpha": a}`.

    Args:
        zero_shot_model, fine_tuned_model: as for `wise_ft`.
        in_distribution: the fine-tuning task's evaluation: `(images, labels)` for
            a classifier (top-1 of its logits) or a callable `model -> accuracy`.
        shifted: the same for data off the fine-tuning distribution.
        alphas: the mixing coefficients to try.
        tolerance: the best alpha has the highest `shifted` accuracy among those
            within `tolerance` of the best `in_distribution` accuracy.

    Example:
        >>> sweep = wise_ft_sweep(zs_clf, ft_clf, (x_task, y_task), (x_shift, y_shift))  # doctest: +SKIP
        >>> sweep["best_alpha"], sweep["table"][0]  # {"alpha", "in_distribution", "shifted"}
    """
    alphas = [_check_alpha(alpha) for alpha in alphas]
    if not alphas:
        raise ValueError("`alphas` is empty; expected values in [0, 1] such as (0, 0.5, 1).")
    matched_weights(zero_shot_model, fine_tuned_model)  # fail before evaluating anything
    evaluate_in, evaluate_shifted = _evaluator(in_distribution), _evaluator(shifted)
    table = []
    for alpha in alphas:
        mixed = wise_ft(zero_shot_model, fine_tuned_model, alpha)
        table.append({"alpha": alpha, "in_distribution": evaluate_in(mixed),
                      "shifted": evaluate_shifted(mixed)})
    best_in = max(row["in_distribution"] for row in table)
    eligible = [row for row in table if row["in_distribution"] >= best_in - tolerance]
    best = max(eligible, key=lambda row: (row["shifted"], row["in_distribution"]))
    return {"table": table, "best_alpha": best["alpha"]}
