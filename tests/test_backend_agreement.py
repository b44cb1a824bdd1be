"""Training takes the same steps on every backend: the demo's AdamW recipe against numpy.

From the same numpy-drawn weights and batch, each `model.fit` step (the
guarded train step, `build_optimizer`'s AdamW with warm-up + cosine schedule,
weight decay on the >= 2-D weights only, the temperature clipped to
`[0, ln 100]`) must equal a numpy AdamW step on the gradients of that step's
weights. The reference is the published update: Adam (Kingma & Ba 2015,
Algorithm 1, in the paper's reordered form with epsilon-hat, as Keras
computes it) with decoupled weight decay (Loshchilov & Hutter 2019); the
decay rule is the paper's / open_clip's. Every backend meets the same
reference, so the backends agree with each other.

Two TensorFlow-only faults this caught (JAX and torch were right): weight
decay on every weight (Keras matches the exclusion pattern against the
tf.Variable's name there), and a wrong Adam second moment for the token
embedding (Keras squares its IndexedSlices gradient slice by slice, so
repeated tokens summed squares). `scripts/backend_step_agreement.py` shows
them on the demo's own model and batches.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_clip import CLIP
from keras_clip.training import build_optimizer
from tests.conftest import tiny_config

LR, WEIGHT_DECAY, TOTAL_STEPS, WARMUP_STEPS, STEPS = 1e-3, 0.1, 8, 2, 4
BETA_1, BETA_2, EPSILON = 0.9, 0.98, 1e-6  # build_optimizer's defaults (the paper's)


def _model_from_numpy(seed=0, loss="softmax"):
    """A tiny ViT CLIP whose weights are drawn with numpy: the same on every backend."""
    model = CLIP(tiny_config("vit"), loss=loss)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = rng.normal(0.0, 0.05, variable.shape)
        if variable.name == "gamma":
            value += 1.0
        if variable.name == "logit_scale":
            value = np.full(variable.shape, math.log(1 / 0.07))
        variable.assign(value.astype("float32"))
    return model


def _batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return {"images": rng.normal(size=(n, 32, 32, 3)).astype("float32"),
            "token_ids": rng.integers(1, 1000, size=(n, 77)).astype("int32")}


def _gradients(model, batch):
    """Gradients of the model's contrastive loss at its current weights (numpy, float64)."""
    backend = keras.backend.backend()
    weights = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = model.compute_loss(y_pred=model(batch, training=True))
        grads = tape.gradient(loss, weights)
    elif backend == "torch":
        model.zero_grad()
        model.compute_loss(y_pred=model(batch, training=True)).backward()
        grads = [v.value.grad for v in weights]
    else:
        import jax

        others = [v for v in model.variables if all(v is not w for w in weights)]

        def loss_of(values):
            mapping = list(zip(weights, values)) + [(v, v.value) for v in others]
            with keras.StatelessScope(state_mapping=mapping):
                return model.compute_loss(y_pred=model(batch, training=True))

        grads = jax.grad(loss_of)([v.value for v in weights])
    return [ops.convert_to_numpy(g).astype("float64") for g in grads]


def _learning_rate(step):
    """Linear warm-up from 0 over WARMUP_STEPS, then cosine decay to 0 at TOTAL_STEPS."""
    if step < WARMUP_STEPS:
        return LR * step / WARMUP_STEPS
    return 0.5 * LR * (1 + math.cos(math.pi * (step - WARMUP_STEPS) / (TOTAL_STEPS - WARMUP_STEPS)))


def _adamw_reference(weights, grads, moments, step, names):
    """One published AdamW step (step counted from 0) of float64 numpy arrays."""
    lr, t = _learning_rate(step), step + 1
    updated = []
    for i, (w, g, name) in enumerate(zip(weights, grads, names)):
        m, v = moments[i]
        m = BETA_1 * m + (1 - BETA_1) * g
        v = BETA_2 * v + (1 - BETA_2) * g * g
        moments[i] = (m, v)
        if w.ndim >= 2:  # decoupled decay of kernels and embeddings only
            w = w - lr * WEIGHT_DECAY * w
        alpha = lr * math.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)
        w = w - alpha * m / (np.sqrt(v) + EPSILON)
        if name == "logit_scale":
            w = np.clip(w, 0.0, math.log(100.0))
        updated.append(w)
    return updated


def test_each_training_step_is_the_published_adamw_step():
    model = _model_from_numpy()
    batch = _batch()
    model.compile(optimizer=build_optimizer(model, LR, total_steps=TOTAL_STEPS,
                                            warmup_steps=WARMUP_STEPS,
                                            weight_decay=WEIGHT_DECAY))
    weights = model.trainable_variables
    names = [v.name for v in weights]
    moments = [(np.zeros(v.shape), np.zeros(v.shape)) for v in weights]
    for step in range(STEPS):
        before = [ops.convert_to_numpy(v).astype("float64") for v in weights]
        expected = _adamw_reference(before, _gradients(model, batch), moments, step, names)
        model.fit(batch, batch_size=len(batch["images"]), epochs=1, shuffle=False, verbose=0)
        # 1% of one step's size: float noise is ~1e-4 of it, weight decay
        # wrongly applied to a gain of ~1 is 10% of it.
        tolerance = 0.01 * _learning_rate(step) + 1e-7
        errors = {f"{i}:{v.path}": float(np.max(np.abs(ops.convert_to_numpy(v) - want)))
                  for i, (v, want) in enumerate(zip(weights, expected))}
        wrong = {name: error for name, error in errors.items() if error > tolerance}
        assert not wrong, f"step {step + 1} (tolerance {tolerance:.1e}): {wrong}"
    assert float(model.skipped_steps_tracker.result()) == 0.0


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_a_fresh_optimizer_decays_only_weights_with_two_or_more_dimensions(loss):
    """Nothing asks the optimizer about a variable before its first update (as in
    `fit`): zero gradients move only the weights that weight decay shrinks (SigLIP's
    0-d `logit_bias` included, as open_clip excludes it)."""
    model = _model_from_numpy(loss=loss)
    optimizer = build_optimizer(model, LR, weight_decay=WEIGHT_DECAY)
    variables = model.trainable_variables
    before = [ops.convert_to_numpy(v).copy() for v in variables]
    optimizer.apply([ops.zeros(v.shape, "float32") for v in variables], variables)
    moved = {i for i, (v, old) in enumerate(zip(variables, before))
             if not np.array_equal(old, ops.convert_to_numpy(v))}
    assert moved == {i for i, v in enumerate(variables) if len(v.shape) >= 2}, sorted(
        variables[i].path + f" {tuple(variables[i].shape)}" for i in moved)
