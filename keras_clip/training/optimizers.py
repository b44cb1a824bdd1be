"""AdamW with CLIP's weight-decay rule and a warm-up + cosine schedule.

The rule is the paper's and open_clip's: every weight with two or more
dimensions is decayed (kernels, token and positional embeddings); gains,
biases, the ViT class token and the temperature (fewer than two dimensions)
are not.

Example:
    >>> from keras_clip.training.optimizers import build_optimizer
    >>> optimizer = build_optimizer(model, learning_rate=5e-4, total_steps=1000,
    ...                             warmup_steps=100)  # doctest: +SKIP
    >>> model.compile(optimizer=optimizer)  # doctest: +SKIP
"""

import math
import numbers

import keras

# The names of keras_clip's variables with fewer than two dimensions: biases,
# LayerNorm / BatchNorm gains and shifts, the ViT class token, the
# temperature and SigLIP's bias. By name, as Keras' AdamW excludes variables. Keras matches it
# against `variable.name` ("gamma") on JAX and torch, but on TensorFlow against
# the underlying tf.Variable's name ("ln_final/gamma:0", "…/gamma/replica_1:0"
# under MirroredStrategy), so the pattern accepts both forms.
NO_DECAY_PATTERN = r"(^|/)(bias|gamma|beta|class_embedding|logit_scale|logit_bias)(/replica_\d+)?(:\d+)?$"


def uses_weight_decay(variable):
    """True if CLIP's recipe decays `variable`: two or more dimensions."""
    return len(variable.shape) >= 2


def no_decay_variable_paths(model):
    """Paths of `model`'s trainable variables excluded from weight decay."""
    return [v.path for v in model.trainable_variables if not uses_weight_decay(v)]


def check_number(name, value, low, high=math.inf, low_open=False, high_open=False):
    """Raises a ValueError unless `value` is a finite real number within the bounds.

    Example:
        >>> check_number("learning_rate", float("nan"), 0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: `learning_rate` must be a finite number > 0, received nan.
    """
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        lower = f"{'>' if low_open else '>='} {low}"
        upper = "" if high == math.inf else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"`{name}` must be a finite number {lower}{upper}, received {value!r}.")
    return value


def _check_steps(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, received {value!r}.")


def cosine_schedule(learning_rate, total_steps, warmup_steps=0, final_fraction=0.0):
    """Linear warm-up from 0 to `learning_rate` over `warmup_steps`, then cosine decay.

    Args:
        learning_rate: peak learning rate.
        total_steps: optimizer steps of the whole run (warm-up included).
        warmup_steps: linear warm-up steps.
        final_fraction: the decayed rate as a fraction of the peak (`alpha`).

    Example:
        >>> schedule = cosine_schedule(1e-3, total_steps=100, warmup_steps=10)
        >>> round(float(schedule(5)), 6), round(float(schedule(10)), 6)
        (0.0005, 0.001)
    """
    check_number("learning_rate", learning_rate, 0, low_open=True)
    check_number("final_fraction", final_fraction, 0, 1)
    _check_steps("total_steps", total_steps, 1)
    _check_steps("warmup_steps", warmup_steps, 0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"`warmup_steps` must be an integer in [0, total_steps={total_steps}), "
            f"received {warmup_steps!r}."
        )
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(
            learning_rate, total_steps, alpha=final_fraction
        )
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        total_steps - warmup_steps,
        alpha=final_fraction,
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )


def build_optimizer(
    model,
    learning_rate=5e-4,
    total_steps=None,
    warmup_steps=0,
    weight_decay=0.2,
    beta_1=0.9,
    beta_2=0.98,
    epsilon=1e-6,
    global_clipnorm=None,
):
    """AdamW as in the CLIP paper, decay only on weight matrices / conv kernels.

    Biases, normalisation gains and shifts, embeddings (token, positional,
    class) and the temperature are excluded from the decoupled weight decay.

    Args:
        model: the (built) model whose variables to classify.
        learning_rate: peak learning rate (a float or a schedule).
        total_steps: if given, a warm-up + cosine schedule over this many steps.
        warmup_steps: linear warm-up steps (needs `total_steps`).
        weight_decay: decoupled weight decay (the paper uses 0.2).
        beta_1, beta_2, epsilon: Adam's (paper: 0.9, 0.98, 1e-6).
        global_clipnorm: optional clipping of the global gradient norm.

    Example:
        >>> optimizer = build_optimizer(model, 5e-4, total_steps=10_000,
        ...                             warmup_steps=500, global_clipnorm=1.0)  # doctest: +SKIP
    """
    if not model.trainable_variables:
        raise ValueError("`model` has no trainable variables; build it before the optimizer.")
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, 0, low_open=True)
    check_number("weight_decay", weight_decay, 0)
    check_number("beta_1", beta_1, 0, 1, high_open=True)
    check_number("beta_2", beta_2, 0, 1, high_open=True)
    check_number("epsilon", epsilon, 0, low_open=True)
    if global_clipnorm is not None:
        check_number("global_clipnorm", global_clipnorm, 0, low_open=True)
    if total_steps is not None:
        learning_rate = cosine_schedule(learning_rate, total_steps, warmup_steps)
    elif warmup_steps:
        raise ValueError("`warmup_steps` needs `total_steps` (the schedule's length).")
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=global_clipnorm,
    )
    # By name, so it also holds for the variables of a reloaded model.
    optimizer.exclude_from_weight_decay(var_names=[NO_DECAY_PATTERN])
    return optimizer
