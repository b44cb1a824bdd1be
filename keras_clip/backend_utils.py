"""Small facts about tensors that several modules need, without importing TensorFlow.

Example:
    >>> import numpy as np
    >>> is_tf_tensor(np.zeros(3))
    False
"""

import sys


def is_tf_tensor(x):
    """Whether `x` is a tf.Tensor or tf.Variable (False when TensorFlow is not loaded)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, (tf.Tensor, tf.Variable))
