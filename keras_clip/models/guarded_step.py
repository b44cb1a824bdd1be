"""Training steps that skip the update when the loss or a gradient is non-finite.

One function per backend, each doing what Keras' own `train_step` does
(forward, loss, gradients, optimizer update, metrics) with the update under
one `cond` on a single finiteness flag: on a skipped step the weights, the
optimizer's state (moments, `iterations`) and the BatchNorm statistics
stay as they were, and the model's `skipped_steps_tracker` counts 1. The
loss and accuracy metrics leave skipped steps out.

Under a `LossScaleOptimizer` only the loss is checked here: overflowing
gradients of a finite loss are the loss scaler's to skip (it lowers its
scale; skipping them here would keep the scale too high for ever).

With `model.micro_batch_size` set, the loss and gradients come from
`grad_cache` (exact gradient caching) instead of one forward/backward pass.

`ContrastiveTrainer.train_step` picks the function for the backend; the
`keras-clip train` callback that stops a run which only skips is
`keras_clip.training.divergence.SkippedStepsGuard`.
"""

import keras
from keras import ops

from keras_clip.models import grad_cache
from keras_clip.models.grad_cache import forward as _forward
from keras_clip.models.grad_cache import forward_state_variables as _forward_state_variables


def all_finite(tensors):
    """A scalar boolean: every tensor in `tensors` (None skipped) is finite.

    Checks each tensor's sum, one cheap reduction (NaN and inf propagate into
    it); a tensor of finite values whose sum overflows float32 counts as
    non-finite too.

    Example:
        >>> import numpy as np
        >>> bool(all_finite([np.ones(2), None, np.array([1.0, np.nan])]))
        False
    """
    sums = [ops.cast(ops.sum(t), "float32") for t in tensors if t is not None]
    return ops.all(ops.isfinite(ops.stack(sums)))


def _checked(model, loss, grads):
    """What decides the skip: the loss, and the gradients unless loss scaling owns them."""
    if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        return [loss]
    return [loss, *grads]


def _update_step_metrics(model, loss, x, finite, replicas=1):
    """Loss metric over applied steps only; `skipped_steps` += 1 on a skipped one.

    `replicas`: tf.distribute replicas, whose metric updates add up.
    """
    batch = ops.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0]
    applied = ops.cast(finite, "float32")
    loss = ops.cast(loss, "float32")
    model._loss_tracker.update_state(ops.where(finite, loss, ops.zeros_like(loss)),
                                     sample_weight=applied * ops.cast(batch, "float32"))
    model.skipped_steps_tracker.update_state((1.0 - applied) / replicas)


def jax_train_step(model, state, data):
    """Keras' JAX `train_step(state, data)`, update skipped when not finite."""
    import jax

    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if model.micro_batch_size:
        loss, grads, y_pred, new_non_trainable, metrics_vars = grad_cache.jax_loss_and_grads(
            model, trainable, non_trainable, metrics_vars, optimizer_vars, x, y)
    else:
        grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)
        (_, aux), grads = grad_fn(trainable, non_trainable, metrics_vars, x, y, sample_weight,
                                  training=True, optimizer_variables=optimizer_vars)
        loss, y_pred, new_non_trainable, metrics_vars = aux
    finite = all_finite(_checked(model, loss, grads))

    def apply():
        new_trainable, new_optimizer = model.optimizer.stateless_apply(
            optimizer_vars, grads, trainable)
        return list(new_trainable), list(new_non_trainable), list(new_optimizer)

    def keep():
        return list(trainable), list(non_trainable), list(optimizer_vars)

    trainable, non_trainable, optimizer_vars = jax.lax.cond(finite, apply, keep)
    mapping = list(zip(model.metrics_variables, metrics_vars))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        _update_step_metrics(model, loss, x, finite)
        logs = model.compute_metrics(x, y, y_pred, sample_weight)
    metrics_vars = [scope.get_current_value(v) for v in model.metrics_variables]
    metrics_vars = [v.value if new is None else new
                    for v, new in zip(model.metrics_variables, metrics_vars)]
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def tf_train_step(model, data):
    """Keras' TensorFlow `train_step(data)`, update skipped when not finite (all replicas)."""
    import tensorflow as tf
    from keras.src.losses.loss import unscale_loss_for_distribution

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    state = _forward_state_variables(model)
    saved = [tf.identity(v.value) for v in state]  # read before the forward pass
    weights = model.trainable_weights
    if model.micro_batch_size:
        loss, grads, y_pred = grad_cache.tf_loss_and_grads(model, x, y, weights)
    else:
        with tf.GradientTape() as tape:
            y_pred = _forward(model, x)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                       training=True)
            scaled = model.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, weights)
    grads = _dense(grads)
    finite = _agree_across_replicas(all_finite(_checked(model, loss, grads)))
    for variable, old in zip(state, saved):
        variable.assign(tf.where(finite, variable.value, old))
    _tf_apply_if(finite, model.optimizer, grads, weights)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    _update_step_metrics(model, unscale_loss_for_distribution(loss), x, finite, replicas)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _dense(grads):
    """Embedding-lookup gradients (`tf.IndexedSlices`) as dense tensors.

    Keras' TensorFlow optimizers square an IndexedSlices gradient slice by
    slice: a row gathered several times in a batch (a repeated token) gets the
    sum of squares, not the square of the sum, in Adam's second moment. Dense,
    the update is Adam's, as on JAX and torch (tests/test_backend_agreement.py).
    """
    import tensorflow as tf

    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


def _agree_across_replicas(finite):
    """True only if every replica's flag is (the replicas must take the same branch)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return finite
    failed = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, "float32"))
    return failed < 0.5


def _tf_apply_if(finite, optimizer, grads, weights):
    import tensorflow as tf

    def apply():
        optimizer.apply(grads, weights)

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        ops.cond(finite, apply, lambda: None)
        return

    # The optimizer's update calls `merge_call`, which may not run inside a
    # cond in a replica context: take the cond to the cross-replica context.
    def cross_replica(strategy, finite, grads):
        flag = strategy.experimental_local_results(finite)[0]
        ops.cond(flag, lambda: strategy.extended.call_for_each_replica(
            optimizer.apply, args=(grads, weights)), lambda: None)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, grads))


def torch_train_step(model, data):
    """Keras' PyTorch `train_step(data)`, update skipped when not finite."""
    import torch

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    state = _forward_state_variables(model)
    saved = [v.value.detach().clone() for v in state]
    weights = model.trainable_weights[:]
    if model.micro_batch_size:
        loss, grads, y_pred = grad_cache.torch_loss_and_grads(model, x, y, weights)
    else:
        y_pred = _forward(model, x)
        model.zero_grad()
        loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                   training=True)
        model.optimizer.scale_loss(loss).backward()
        grads = [v.value.grad for v in weights]
    finite = all_finite(_checked(model, loss, grads))
    with torch.no_grad():
        if bool(finite):
            model.optimizer.apply(grads, weights)
        else:
            for variable, old in zip(state, saved):
                variable.assign(old)
    _update_step_metrics(model, loss.detach(), x, finite)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


TRAIN_STEPS = {"jax": jax_train_step, "tensorflow": tf_train_step, "torch": torch_train_step}
