"""One SGD step on one global batch: single device vs two replicas.

Usage: python -m tests.scripts.one_step {tensorflow|jax} OUT.json

tensorflow: two logical CPUs and MirroredStrategy; jax: two host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=2) and DataParallel.
Writes the largest weight difference to the single-device run, plus two
deliberately wrong variants (no gather; no 1/world-size scaling) that must
differ, to show the comparison would catch open_clip#616-style bugs.
"""

import json
import sys

from tests.scripts.common import two_host_devices

BACKEND, OUT = sys.argv[1], sys.argv[2]
two_host_devices(BACKEND)
if BACKEND == "tensorflow":
    import tensorflow as tf

import keras  # noqa: E402
from keras import ops  # noqa: E402

from keras_clip import CLIP  # noqa: E402
from keras_clip.models import contrastive_trainer as contrastive  # noqa: E402
from tests.scripts.common import TINY, fixed_batch, initial_weights, max_difference  # noqa: E402

LR, BATCH = 0.1, 8


def one_step(weights, scope=None):
    import contextlib

    with scope or contextlib.nullcontext():
        model = CLIP(TINY)
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(LR))
    model.fit(fixed_batch(BATCH), batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return [ops.convert_to_numpy(w) for w in model.get_weights()]


weights = initial_weights()
single = one_step(weights)
result = {}
if BACKEND == "tensorflow":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result["replicas"] = strategy.num_replicas_in_sync
    result["max_weight_diff"] = max_difference(single, one_step(weights, strategy.scope()))

    # Wrong 1: negatives from the local batch only (no all-gather).
    gather = contrastive.gather_global_batch
    contrastive.gather_global_batch = lambda i, t: (i, t, 0, ops.shape(i)[0])
    result["no_gather_diff"] = max_difference(single, one_step(weights, strategy.scope()))

    # Wrong 2: gather, but each replica's loss not divided by the world size.
    def unscaled(i, t):
        all_i, all_t, offset, total = gather(i, t)
        return all_i, all_t, offset, total // 2

    contrastive.gather_global_batch = unscaled
    result["unscaled_diff"] = max_difference(single, one_step(weights, strategy.scope()))
else:
    import jax

    result["replicas"] = jax.device_count()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    result["max_weight_diff"] = max_difference(single, one_step(weights))
result["max_gradient_diff"] = result["max_weight_diff"] / LR
with open(OUT, "w") as f:
    json.dump(result, f)
print(json.dumps(result))
