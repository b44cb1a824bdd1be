"""A short fit with keras.callbacks.BackupAndRestore, optionally stalled mid-epoch.

Usage: python -m tests.scripts.backup_run BACKUP_DIR OUT.npz [STALL_MARKER]

With STALL_MARKER the run writes that file in the middle of epoch 2 and
sleeps there, for the parent to SIGKILL it. Run again without the marker, the
same command resumes from the last completed epoch and finishes. The data is
fixed arrays in a fixed order (shuffle=False), so every epoch sees the same
batches whether or not the run was restarted.
"""

import os
import sys
import time

import keras

from keras_clip import CLIP
from keras_clip.training import build_optimizer
from tests.scripts.common import TINY, fixed_batch, initial_weights, save_weights

BACKUP, OUT = sys.argv[1], sys.argv[2]
MARKER = sys.argv[3] if len(sys.argv) > 3 else None
EPOCHS, BATCH, SAMPLES = 3, 8, 32


class StallMidEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            with open(MARKER, "w") as f:
                f.write("stalled")
            time.sleep(600)


model = CLIP(TINY)
model.set_weights(initial_weights())
steps = EPOCHS * SAMPLES // BATCH
model.compile(optimizer=build_optimizer(model, 2e-3, total_steps=steps, warmup_steps=2))
callbacks = [keras.callbacks.BackupAndRestore(BACKUP, save_freq="epoch")]
if MARKER:
    callbacks.append(StallMidEpoch())
model.fit(fixed_batch(SAMPLES), batch_size=BATCH, epochs=EPOCHS, shuffle=False,
          callbacks=callbacks, verbose=0)
save_weights(model, OUT)
print("iterations", int(keras.ops.convert_to_numpy(model.optimizer.iterations)))
