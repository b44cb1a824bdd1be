"""Contrastive training through plain `model.compile()` / `model.fit()`.

`ContrastiveTrainer` is a mixin of `keras_clip.CLIP`: it overrides
`compute_loss`, which every backend's `train_step` / `test_step` calls, so
the datasets yield only `{"images", "token_ids"}` (no labels) and no loss is
passed to `compile`. Metrics: `loss`, `i2t_accuracy` and `t2i_accuracy`
(in-batch top-1 over the global batch), `logit_scale` and `skipped_steps`.

A training step whose loss or any gradient is NaN or infinite changes
nothing (weights, optimizer state, BatchNorm statistics) and counts in
`skipped_steps` (reset every epoch, like the other metrics); the loss and
accuracies average over the applied steps (see `guarded_step`).

Losses (the model's `loss` option): `"softmax"`, CLIP's symmetric
cross-entropy, or `"sigmoid"`, SigLIP's pairwise sigmoid loss with a
learnable bias `b` (initialised to -10, the temperature `t` to ln 10).
Both use the global batch: under several replicas each replica scores its
own rows against every replica's gathered embeddings.

Gradient caching: `model.compile(optimizer, micro_batch_size=m)` computes
exactly the full (global-batch) gradient while holding the activations of
only `m` pairs per replica at a time (see `keras_clip.models.grad_cache`).

The temperature `t` gets a constraint that keeps `exp(t)` in `[1, 100]`
after every optimizer step (on top of the `min(exp(t), 100)` in the
forward pass).

Example:
    >>> import keras, keras_clip, numpy as np
    >>> model = keras_clip.CLIP(TINY_CONFIG)  # doctest: +SKIP
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-4))  # doctest: +SKIP
    >>> model.fit({"images": images, "token_ids": token_ids}, batch_size=8)  # doctest: +SKIP
    >>> model.compile(optimizer="sgd", micro_batch_size=2)  # doctest: +SKIP
"""

import math

import keras
from keras import ops

from keras_clip.layers.logit_bias import LogitBias
from keras_clip.losses import (
    in_batch_accuracy,
    local_contrastive_logits,
    local_contrastive_loss,
    local_sigmoid_loss,
)
from keras_clip.models.global_batch import gather_global_batch, tf_replica_context
from keras_clip.models.grad_cache import check_micro_batch_size
from keras_clip.models.guarded_step import TRAIN_STEPS

MAX_LOG_SCALE = math.log(100.0)
LOSSES = ("softmax", "sigmoid")
SIGLIP_LOG_SCALE_INIT = math.log(10.0)


@keras.saving.register_keras_serializable(package="keras_clip")
class LogitScaleConstraint(keras.constraints.Constraint):
    """Clips the temperature variable `t` to `[0, ln 100]` (scale `exp(t)` in `[1, 100]`)."""

    def __call__(self, w):
        return ops.clip(w, 0.0, MAX_LOG_SCALE)


class LastValue(keras.metrics.Metric):
    """Reports the last value given to `update_state` (e.g. the logit scale).

    Example:
        >>> metric = LastValue("scale")
        >>> metric.update_state(3.0); float(metric.result())
        3.0
    """

    def __init__(self, name="last_value", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self.value = self.add_variable((), "zeros", aggregation="mean", name="value")

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.dtype))

    def result(self):
        return ops.convert_to_tensor(self.value)


def _multi_worker_tf():
    """True inside a multi-worker `MultiWorkerMirroredStrategy` (tensorflow backend)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    extended = getattr(strategy, "extended", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        getattr(extended, "_in_multi_worker_mode", lambda: False)()
    )


class AppliedStepsMean(keras.metrics.Mean):
    """A `Mean` that is NaN, not 0, before any value with a non-zero weight.

    The loss metric: skipped steps add weight 0, so an epoch whose every
    step was skipped reports NaN loss instead of a perfect 0.

    Example:
        >>> metric = AppliedStepsMean()
        >>> metric.update_state(5.0, sample_weight=0.0); float(metric.result())
        nan
    """

    def result(self):
        mean = super().result()
        return ops.where(self.count > 0, mean, ops.full_like(mean, float("nan")))


class ContrastiveTrainer:
    """Mixin giving a two-tower model CLIP's contrastive `compute_loss`.

    The host model's outputs must include `"image_embeddings"` and
    `"text_embeddings"`; it must expose `logit_scale` (the current multiplier)
    and `contrastive_logits.logit_scale` (the temperature variable). Call
    `self._setup_contrastive_training(loss)` at the end of `__init__`.
    """

    micro_batch_size = None

    def _setup_contrastive_training(self, loss="softmax"):
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}, received {loss!r}.")
        self.contrastive_loss = loss
        self.logit_bias_layer = None
        if loss == "sigmoid":
            self.contrastive_logits.logit_scale.assign(SIGLIP_LOG_SCALE_INIT)
            self.logit_bias_layer = LogitBias(name="logit_bias")
            self.logit_bias_layer.build()
        self.contrastive_logits.logit_scale.constraint = LogitScaleConstraint()
        self.i2t_accuracy_tracker = keras.metrics.Mean(name="i2t_accuracy")
        self.t2i_accuracy_tracker = keras.metrics.Mean(name="t2i_accuracy")
        self.logit_scale_tracker = LastValue(name="logit_scale")
        self.skipped_steps_tracker = keras.metrics.Sum(name="skipped_steps")

    def compile(self, *args, micro_batch_size=None, **kwargs):
        """Keras' `compile`, plus `micro_batch_size`: gradient caching in micro-batches
        of that many pairs per replica (None: the plain step)."""
        if micro_batch_size is not None:
            check_micro_batch_size(micro_batch_size)
            if self.losses:
                raise ValueError("micro_batch_size does not support regularisation losses "
                                 f"(model.losses holds {len(self.losses)}); remove them or "
                                 "train without micro_batch_size.")
        super().compile(*args, **kwargs)
        self.micro_batch_size = micro_batch_size
        from keras.src.utils.tracking import DotNotTrackScope

        with DotNotTrackScope():  # as Keras' compile: not one more entry of `metrics`
            self._loss_tracker = AppliedStepsMean(name="loss")

    def train_step(self, *args):
        # Keras' step for the backend, with the update skipped on a non-finite
        # loss or gradient: `(data)`, or `(state, data)` on JAX.
        if self.optimizer is None or not self.trainable_weights:
            return super().train_step(*args)
        return TRAIN_STEPS[keras.backend.backend()](self, *args)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15, TF backend) reduces the whole first distributed batch with
        # `strategy.reduce`, which fails for a dict batch under
        # MultiWorkerMirroredStrategy. Building only needs shapes: take this
        # worker's first replica's values instead.
        strategy = getattr(self, "_distribute_strategy", None)
        if keras.backend.backend() != "tensorflow" or strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        import tensorflow as tf

        def local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(local, next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        results = super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if _multi_worker_tf():
            # Keras 3.15 reduces step outputs across workers with
            # `strategy.reduce("MEAN", v, axis=0)`, which needs rank >= 1.
            results = {name: ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    @property
    def logit_bias(self):
        """SigLIP's bias `b` (float32 scalar); None with the softmax loss."""
        return None if self.logit_bias_layer is None else self.logit_bias_layer.bias()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The global-batch contrastive loss (float32, softmax or sigmoid) of `y_pred`.

        Under several `tf.distribute` replicas this is this replica's share
        (its per-pair losses summed, divided by the global batch), so that the
        replicas' summed gradients are the global-batch gradients.
        """
        if not isinstance(y_pred, dict) or not {"image_embeddings", "text_embeddings"} <= set(
            y_pred
        ):
            raise ValueError(
                "Contrastive training needs the model outputs 'image_embeddings' and "
                f"'text_embeddings', received {type(y_pred).__name__} "
                f"{sorted(y_pred) if isinstance(y_pred, dict) else ''}."
            )
        if sample_weight is not None:
            raise ValueError(
                "Contrastive training does not use sample weights; the dataset should "
                "yield only {'images', 'token_ids'}."
            )
        images, texts = y_pred["image_embeddings"], y_pred["text_embeddings"]
        all_images, all_texts, offset, global_batch = gather_global_batch(images, texts)
        scale = self.logit_scale
        i2t, t2i = local_contrastive_logits(images, texts, all_images, all_texts, scale)
        if self.contrastive_loss == "sigmoid":
            per_pair = local_sigmoid_loss(images, all_texts, scale, self.logit_bias, offset)
        else:
            per_pair = local_contrastive_loss(i2t, t2i, offset)  # (b,)
        loss = ops.sum(per_pair) / ops.cast(global_batch, "float32")
        # Accuracies leave out a step whose loss is not finite (it is skipped).
        local_batch = ops.cast(ops.shape(per_pair)[0], "float32") * ops.cast(
            ops.isfinite(loss), "float32")
        self.i2t_accuracy_tracker.update_state(in_batch_accuracy(i2t, offset), local_batch)
        self.t2i_accuracy_tracker.update_state(in_batch_accuracy(t2i, offset), local_batch)
        self.logit_scale_tracker.update_state(scale)
        if self.losses:  # regularisers, if a user added any: once over all replicas
            context = tf_replica_context()
            replicas = 1 if context is None else context.num_replicas_in_sync
            loss = loss + ops.cast(ops.sum(self.losses), "float32") / replicas
        return loss
