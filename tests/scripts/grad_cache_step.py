"""One SGD step on one global batch of 8: plain single device vs two replicas.

Usage: python -m tests.scripts.grad_cache_step {tensorflow|jax} OUT.json

tensorflow: two logical CPUs and MirroredStrategy; jax: two host devices and
keras.distribution.DataParallel. For each loss (softmax, sigmoid) writes the
largest relative weight difference to the plain single-device step of the
gradient-cached two-replica step (micro_batch_size 2, so two micro-batches
per replica), and for sigmoid also of the plain two-replica step.
"""

import json
import sys

from tests.scripts.common import two_host_devices

BACKEND, OUT = sys.argv[1], sys.argv[2]
two_host_devices(BACKEND)
if BACKEND == "tensorflow":
    import tensorflow as tf

import contextlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_clip import CLIP  # noqa: E402
from tests.scripts.common import TINY, fixed_batch, relative_difference  # noqa: E402

LR, BATCH = 0.1, 8
# One strategy for every run: a second MirroredStrategy in the process may reuse
# collective keys of the first.
STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if BACKEND == "tensorflow" else None


def one_step(loss, weights, micro_batch_size=None, distributed=False):
    if distributed and BACKEND == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    strategy = STRATEGY if distributed and BACKEND == "tensorflow" else None
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = CLIP(TINY, loss=loss)
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(LR), micro_batch_size=micro_batch_size)
    model.fit(fixed_batch(BATCH), batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    keras.distribution.set_distribution(None) if BACKEND == "jax" else None
    return [ops.convert_to_numpy(w) for w in model.get_weights()]


result = {}
for loss in ("softmax", "sigmoid"):
    keras.utils.set_random_seed(0)
    weights = [np.asarray(w) for w in CLIP(TINY, loss=loss).get_weights()]
    single = one_step(loss, weights)
    result[loss] = {
        "moved": relative_difference(single, weights),
        "cached_two_replicas": relative_difference(single, one_step(loss, weights, 2,
                                                                    distributed=True)),
    }
# The plain softmax step under two replicas is tests/test_distribution.py's.
result["sigmoid"]["plain_two_replicas"] = relative_difference(
    single, one_step("sigmoid", weights, distributed=True))
if BACKEND == "jax":
    import jax

    result["replicas"] = jax.device_count()
else:
    result["replicas"] = STRATEGY.num_replicas_in_sync
with open(OUT, "w") as f:
    json.dump(result, f)
print(json.dumps(result))
