"""Activations used by CLIP checkpoints, written to export cleanly to ONNX.

Example:
    >>> import numpy as np
    >>> from keras_clip.layers.activations import get_activation
    >>> act = get_activation("quick_gelu")
    >>> round(float(act(np.float32(1.0))), 4)
    0.8458
"""

import math

from keras import ops


def quick_gelu(x):
    """OpenAI's GELU approximation, `x * sigmoid(1.702 x)`."""
    x = ops.convert_to_tensor(x)
    return x * ops.sigmoid(1.702 * x)


def gelu(x):
    """Exact GELU, `0.5 x (1 + erf(x / sqrt(2)))`.

    Written with `erf` rather than the backend's GELU: TensorFlow's exact GELU
    lowers to `Erfc`, which tf2onnx cannot convert, while `Erf` exports
    everywhere.
    """
    x = ops.convert_to_tensor(x)
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


_ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": gelu}


def get_activation(name):
    """Returns the activation function called `name`."""
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[name]
