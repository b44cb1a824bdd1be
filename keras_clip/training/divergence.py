"""Stopping a training run that no longer progresses, before it saves anything.

The model's train step skips (and counts in `skipped_steps`) every update with a
non-finite loss or gradient; `SkippedStepsGuard` turns a run of such steps, or
non-finite weights at an epoch's end, into `TrainingDiverged`.
"""

import keras
from keras import ops

from keras_clip.models.guarded_step import all_finite


class TrainingDiverged(RuntimeError):
    """Training stopped making progress: only skipped steps, or non-finite weights."""


def non_finite_weights(model):
    """Paths of `model`'s weights holding a NaN or an infinity (checked on the device)."""
    if bool(ops.convert_to_numpy(all_finite(model.weights))):  # one reduction, the usual case
        return []
    return [w.path for w in model.weights
            if not bool(ops.convert_to_numpy(ops.all(ops.isfinite(w))))]


class SkippedStepsGuard(keras.callbacks.Callback):
    """Stops `fit` with `TrainingDiverged` when training no longer progresses.

    Raises after `max_consecutive` skipped steps in a row (the model's
    `skipped_steps` metric), or at an epoch's end if a weight is not finite.
    Put it before checkpoint callbacks, so that they save nothing then.

    Example:
        >>> model.fit(data, callbacks=[SkippedStepsGuard(10), checkpoint])  # doctest: +SKIP
    """

    def __init__(self, max_consecutive=10):
        super().__init__()
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self._epoch_skipped = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_skipped = 0.0  # the metric restarts every epoch

    def on_train_batch_end(self, batch, logs=None):
        skipped = float((logs or {}).get("skipped_steps", 0.0))
        new, self._epoch_skipped = skipped - self._epoch_skipped, skipped
        self.consecutive = self.consecutive + round(new) if new > 0 else 0
        if self.consecutive >= self.max_consecutive:
            raise TrainingDiverged(
                f"{self.consecutive} consecutive training steps skipped for a non-finite "
                "loss or gradient (NaN/inf in the data or a too high learning rate?); stopped "
                "without saving.")

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite_weights(self.model)
        if bad:
            raise TrainingDiverged(f"non-finite weights after epoch {epoch + 1} ({bad[0]} and "
                                   f"{len(bad) - 1} more); stopped without saving.")
