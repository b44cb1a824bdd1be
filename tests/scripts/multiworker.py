"""One worker of a two-process MultiWorkerMirroredStrategy run on localhost.

Usage: TF_CONFIG=... python -m tests.scripts.multiworker OUT_DIR

Trains a tiny CLIP for a few AdamW steps (global batch 8, 4 per worker) and
writes the final weights to OUT_DIR/worker{index}.npz.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

from keras_clip import CLIP  # noqa: E402
from keras_clip.training import build_optimizer  # noqa: E402
from tests.scripts.common import TINY, fixed_batch, initial_weights, save_weights  # noqa: E402

OUT = sys.argv[1]
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
weights = initial_weights()
with strategy.scope():
    model = CLIP(TINY)
    model.set_weights(weights)
    model.compile(optimizer=build_optimizer(model, 1e-3, total_steps=4, warmup_steps=1))
data = tf.data.Dataset.from_tensor_slices(fixed_batch(32)).batch(8)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
history = model.fit(data.with_options(options), epochs=1, verbose=0)
save_weights(model, os.path.join(OUT, f"worker{index}.npz"))
print(json.dumps({"worker": index, "replicas": strategy.num_replicas_in_sync,
                  "loss": history.history["loss"]}))
