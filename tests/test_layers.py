"""Layer behaviour against independent numpy formulas, and config round trips."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_clip import layers as L
from keras_clip.layers.dense import Dense


def to_numpy(x):
    return ops.convert_to_numpy(x)


def test_quick_gelu_and_exact_gelu_formulas():
    x = np.linspace(-4, 4, 17).astype("float32")
    np.testing.assert_allclose(to_numpy(L.quick_gelu(x)), x / (1 + np.exp(-1.702 * x)), atol=1e-6)
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(to_numpy(L.gelu(x)), 0.5 * x * (1 + erf(x / np.sqrt(2))), atol=1e-6)
    with pytest.raises(ValueError, match="Unknown activation 'relu6'"):
        L.get_activation("relu6")


def reference_attention(x, kernel, bias, out_kernel, out_bias, heads, causal):
    """Plain numpy multi-head attention with a fused QKV kernel."""
    batch, length, width = x.shape
    qkv = x @ kernel + bias
    q, k, v = np.split(qkv, 3, axis=-1)
    split = lambda t: t.reshape(batch, length, heads, -1).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(width // heads)
    if causal:
        scores = scores + np.triu(np.full((length, length), -np.inf), 1)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
    return out @ out_kernel + out_bias


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_numpy(causal):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    layer = L.MultiHeadSelfAttention(num_heads=2, causal=causal)
    layer.build(x.shape)
    for variable in layer.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.3)
    expected = reference_attention(
        x,
        to_numpy(layer.in_proj.kernel),
        to_numpy(layer.in_proj.bias),
        to_numpy(layer.out_proj.kernel),
        to_numpy(layer.out_proj.bias),
        2,
        causal,
    )
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-5)


def test_causal_attention_ignores_future_tokens():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 8)).astype("float32")
    layer = L.MultiHeadSelfAttention(num_heads=2, causal=True)
    changed = x.copy()
    changed[:, 4:] += 5.0
    np.testing.assert_allclose(to_numpy(layer(x))[:, :4], to_numpy(layer(changed))[:, :4], atol=1e-5)


def test_end_of_text_pooling_picks_the_highest_id():
    hidden = np.arange(2 * 4 * 3, dtype="float32").reshape(2, 4, 3)
    token_ids = np.array([[7, 1, 9, 0], [7, 9, 0, 0]], "int32")
    pooled = to_numpy(L.EndOfTextPooling()(hidden, token_ids))
    np.testing.assert_array_equal(pooled, hidden[[0, 1], [2, 1]])


def test_contrastive_logits_scale_and_clip():
    layer = L.ContrastiveLogits()
    images = np.array([[3.0, 0.0], [0.0, 2.0]], "float32")
    texts = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
    logits = to_numpy(layer(images, texts))
    cosine = np.array([[1.0, 1 / np.sqrt(2)], [0.0, 1 / np.sqrt(2)]])
    np.testing.assert_allclose(logits, cosine / 0.07, rtol=1e-5)
    layer.logit_scale.assign(10.0)  # exp(10) > 100: clipped
    np.testing.assert_allclose(to_numpy(layer.scale()), 100.0)


def test_attention_pool_query_is_the_mean_token():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(2, 2, 2, 8)).astype("float32")
    pool = L.AttentionPool2d(spatial_size=2, num_heads=2, output_dim=4)
    out = to_numpy(pool(features))
    tokens = features.reshape(2, 4, 8)
    tokens = np.concatenate([tokens.mean(1, keepdims=True), tokens], 1) + to_numpy(
        pool.positional_embedding
    )
    dense = lambda layer, t: t @ to_numpy(layer.kernel) + to_numpy(layer.bias)  # noqa: E731
    q = dense(pool.q_proj, tokens[:, :1]).reshape(2, 1, 2, 4).transpose(0, 2, 1, 3)
    k = dense(pool.k_proj, tokens).reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)
    v = dense(pool.v_proj, tokens).reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / 2.0
    weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    pooled = (weights @ v).transpose(0, 2, 1, 3).reshape(2, 8)
    np.testing.assert_allclose(out, dense(pool.c_proj, pooled), atol=1e-5)


def test_bottleneck_downsamples_both_paths():
    block = L.Bottleneck(planes=4, stride=2)
    out = block(np.ones((1, 8, 8, 4), "float32"))
    assert tuple(out.shape) == (1, 4, 4, 16) and block.has_downsample
    assert not L.Bottleneck(planes=4, stride=1).__dict__.get("has_downsample")
    with pytest.raises(ValueError, match="`stride` must be 1 or 2, received 3"):
        L.Bottleneck(planes=4, stride=3)


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (L.MultiHeadSelfAttention(2, causal=True), [np.ones((1, 3, 8), "float32")]),
        (L.ResidualAttentionBlock(2, 16, activation="gelu"), [np.ones((1, 3, 8), "float32")]),
        (L.ClassTokenAndPositionEmbedding(4), [np.ones((1, 4, 8), "float32")]),
        (L.TokenAndPositionEmbedding(10, 3, 8), [np.ones((1, 3), "int32")]),
        (L.Bottleneck(2, stride=2), [np.ones((1, 4, 4, 8), "float32")]),
        (L.AttentionPool2d(2, 2, 6), [np.ones((1, 2, 2, 8), "float32")]),
        (Dense(3, activation="relu"), [np.ones((1, 2, 8), "float32")]),
    ],
)
def test_layers_round_trip_through_get_config(layer, inputs):
    expected = to_numpy(layer(*inputs))
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    clone(*inputs)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(to_numpy(clone(*inputs)), expected, atol=1e-6)


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="num_heads.*received 0"):
        L.MultiHeadSelfAttention(0)
    with pytest.raises(ValueError, match=r"width \(10\) must be divisible by num_heads \(3\)"):
        L.MultiHeadSelfAttention(3)(np.ones((1, 2, 10), "float32"))
    with pytest.raises(ValueError, match="Expected a 2x2 feature map"):
        L.AttentionPool2d(2, 2, 4)(np.ones((1, 3, 3, 8), "float32"))


def test_patch_embedding_equals_the_strided_convolution():
    """Same kernel, same numbers as `Conv2D(stride = kernel)`, computed with numpy
    (on JAX the layer runs as a matmul over flattened patches)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 12, 12, 3)).astype("float32")
    layer = L.PatchEmbedding(5, 4, strides=4, use_bias=False)
    out = ops.convert_to_numpy(layer(images))
    kernel = ops.convert_to_numpy(layer.kernel)  # (4, 4, 3, 5)
    patches = images.reshape(2, 3, 4, 3, 4, 3).transpose(0, 1, 3, 2, 4, 5)
    expected = np.einsum("bijyxc,yxcf->bijf", patches, kernel)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA program of the JAX path")
def test_patch_embedding_gradient_has_no_convolution_on_jax():
    """XLA:CPU emits this convolution's weight gradient as a naive loop inside the
    gradient-caching `lax.scan` (benchmarks/results/grad_cache.md): none is left."""
    import jax

    layer = L.PatchEmbedding(8, 4, strides=4, use_bias=False)
    images = np.ones((2, 8, 8, 3), "float32")
    layer.build(images.shape)

    def loss(kernel):
        out, _ = layer.stateless_call([kernel], [], images)
        return ops.sum(out**2)

    hlo = jax.jit(jax.grad(loss)).lower(layer.kernel.value).as_text()
    assert "convolution" not in hlo


def test_dense_matches_numpy_on_every_backend():
    """keras_clip's `Dense` (the towers' projections) computes x @ W + b like Keras'."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8)).astype("float32")
    layer = Dense(5)
    out = ops.convert_to_numpy(layer(x))
    kernel, bias = (ops.convert_to_numpy(v) for v in (layer.kernel, layer.bias))
    np.testing.assert_allclose(out, x @ kernel + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the hand-written VJP is JAX's")
@pytest.mark.parametrize("shape", [(6, 8), (2, 3, 8), (2, 2, 3, 8)])
@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_dense_gradients_on_jax_equal_the_analytic_ones(shape, compute_dtype):
    """loss = sum(Dense(x) * r): dW = X^T R, db = sum(R), dX = R W^T, for 2-D to 4-D inputs.

    Under `mixed_bfloat16` the VJP runs on bf16 operands and the autocast returns
    fp32 gradients for the fp32 weights.
    """
    import jax

    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype("float32")
    r = rng.normal(size=shape[:-1] + (5,)).astype("float32")
    layer = Dense(5, dtype="float32" if compute_dtype == "float32" else "mixed_bfloat16")
    layer.build(shape)
    kernel, bias = (ops.convert_to_numpy(v) for v in (layer.kernel, layer.bias))

    def loss(variables, x):  # as Keras' JAX trainer calls a model
        with keras.StatelessScope(state_mapping=zip(layer.trainable_variables, variables)):
            out = layer(x, training=True)
        assert out.dtype == compute_dtype
        return ops.sum(ops.cast(out, "float32") * r)

    (grad_kernel, grad_bias), grad_x = jax.grad(loss, argnums=(0, 1))([kernel, bias], x)
    tol = 1e-5 if compute_dtype == "float32" else 3e-2
    rows_x, rows_r = x.reshape(-1, 8), r.reshape(-1, 5)
    np.testing.assert_allclose(grad_kernel, rows_x.T @ rows_r, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad_bias, rows_r.sum(0), rtol=tol, atol=tol)
    np.testing.assert_allclose(grad_x, r @ kernel.T, rtol=tol, atol=tol)
    assert grad_kernel.dtype == "float32" and grad_x.dtype == "float32"


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="a property of the JAX program")
def test_towers_use_the_dense_vjp_in_training_only_on_jax():
    """The ViT step's speed on JAX rests on its projections taking the hand-written VJP
    (`benchmarks/results/amx/NOTES.md`); inference, and so the export, must not."""
    import jax

    from keras_clip.models import CLIP
    from tests.conftest import tiny_config

    model = CLIP(tiny_config("vit"))
    images = np.zeros((1, 32, 32, 3), "float32")
    model.image_encoder(images)
    encoder = model.image_encoder
    weights = [v.value for v in encoder.trainable_variables]
    others = [v.value for v in encoder.non_trainable_variables]

    def program(training):
        return str(jax.make_jaxpr(lambda w: encoder.stateless_call(
            w, others, images, training=training)[0])(weights))

    assert program(True).count("custom_vjp_call") >= 4 * model.config.vision.layers
    assert "custom_vjp_call" not in program(False)
