"""The precision an inference job computes in: `"fp32"` or `"bf16"`.

`for_precision(model, "bf16")` gives a copy of `model` under the `bfloat16`
dtype policy with the same weights (the model itself when it already computes
in that dtype). bf16 is fast where the backend reaches the CPU's bf16 units:
TensorFlow's graph path (oneDNN, AMX / AVX-512 BF16) and torch; JAX's XLA:CPU
runs bf16 at about fp32 speed (benchmarks/results/amx/bf16_and_jax_train.md).
On a CPU without bf16 instructions it is emulated and slower than fp32, so
asking for it there warns.

Example:
    >>> fast = for_precision(model, "bf16")  # doctest: +SKIP
    >>> fast.encode_image(pixels)            # doctest: +SKIP
"""

import warnings

import keras

PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(precision):
    """`precision` if it is one of `PRECISIONS`, else a one-line ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; "
                         f"received {precision!r}.")
    return precision


def precision_of(model):
    """The precision `model`'s image tower computes in (`"fp32"` or `"bf16"`)."""
    dtype = keras.backend.standardize_dtype(model.image_encoder.outputs[0].dtype)
    names = {v: k for k, v in PRECISIONS.items()}
    if dtype not in names:
        raise ValueError(f"The image tower computes in {dtype}; embed_folder supports "
                         f"{', '.join(PRECISIONS.values())}.")
    return names[dtype]


def for_precision(model, precision):
    """`model` computing in `precision` (a copy with the same weights if it must change).

    Args:
        model: a `keras_clip.CLIP`.
        precision: `"fp32"` or `"bf16"`; `None` keeps the model's own.

    Returns:
        `(model, precision)`.
    """
    if precision is None:
        return model, precision_of(model)
    check_precision(precision)
    if precision == "bf16":
        warn_without_bf16()
    if precision_of(model) == precision:
        return model, precision
    if not hasattr(model, "get_config") or not hasattr(model, "config"):
        raise ValueError(f"precision={precision!r} needs a keras_clip.CLIP model to copy "
                         f"under the {PRECISIONS[precision]} policy; received {type(model)}.")
    copy = type(model).from_config(dict(model.get_config(), dtype=PRECISIONS[precision]))
    copy.set_weights(model.get_weights())
    return copy, precision


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (Linux `/proc/cpuinfo`), or None where they cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8") as file:
            return set(next(line for line in file if line.startswith("flags")).split()[2:])
    except (OSError, StopIteration):
        return None


def _on_accelerator():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def warn_without_bf16(flags=None):
    """Warns (one line) when bf16 would run on a CPU that has no bf16 instructions."""
    flags = cpu_flags() if flags is None else flags
    if flags is None or flags & set(BF16_FLAGS) or _on_accelerator():
        return
    warnings.warn(f"precision='bf16' on a CPU without {' or '.join(BF16_FLAGS)}: bf16 is "
                  "emulated there and will be slower than fp32; use precision='fp32'.",
                  stacklevel=3)
