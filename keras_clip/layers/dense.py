"""`keras.layers.Dense` whose JAX gradient is two plain 2-D matmuls."""

import functools

import keras
from keras import layers, ops


@functools.cache
def _jax_matmul():
    """`x @ w` with a hand-written VJP; built on first use so only JAX imports jax."""
    import jax
    from jax import lax

    @jax.custom_vjp
    def matmul(x, w):
        return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))

    def forward(x, w):
        return matmul(x, w), (x, w)

    def backward(saved, grad):
        x, w = saved
        rows_x = x.reshape(-1, x.shape[-1])
        rows_grad = grad.reshape(-1, grad.shape[-1])
        # dW = X^T G as one dot contracting the rows of both: XLA:CPU's fast layout.
        grad_w = lax.dot_general(rows_x, rows_grad, (((0,), (0,)), ((), ())))
        grad_x = lax.dot_general(grad, w, (((grad.ndim - 1,), (1,)), ((), ())))
        return grad_x.astype(x.dtype), grad_w.astype(w.dtype)

    matmul.defvjp(forward, backward)
    return matmul


@keras.saving.register_keras_serializable(package="keras_clip")
class Dense(layers.Dense):
    """`keras.layers.Dense` (same variables, numbers and checkpoints) with a faster JAX backward.

    JAX's own transpose of `x @ w` for a `(batch, tokens, width)` input makes
    XLA:CPU copy the output gradient into a transposed layout and run the
    weight gradient with both operands transposed: the backward of every
    projection took 1.5x the two matmuls it is made of, and the ViT-B/32
    training step 3-4x its forward pass (`benchmarks/results/amx/NOTES.md`).
    Here the backward is written out as the two matmuls, in training calls
    (`training=True`, as `fit` makes them). Inference (so every export),
    other backends, and quantized or LoRA layers run Keras' `Dense.call`.

    Example:
        >>> import numpy as np
        >>> layer = Dense(4)
        >>> layer(np.ones((2, 3, 8), "float32")).shape
        (2, 3, 4)
    """

    def call(self, inputs, training=None):
        if (not training or keras.backend.backend() != "jax"
                or self.quantization_mode is not None or self.lora_enabled):
            return super().call(inputs, training=training)
        x = _jax_matmul()(ops.convert_to_tensor(inputs), ops.convert_to_tensor(self.kernel))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x
