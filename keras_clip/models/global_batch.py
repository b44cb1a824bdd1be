"""Global-batch negatives: all-gathers each replica's embeddings for the loss.

Under a `tf.distribute` strategy (Mirrored, MultiWorkerMirrored, TPU) each
replica holds `b` of the global `B` pairs; `gather_global_batch` all-gathers
the embeddings (differentiably) so every replica scores its rows against all
`B` columns. Keras sums the replicas' gradients, so each replica's loss is
its per-pair losses summed and divided by `B`: the sum over replicas is then
exactly the global-batch loss, and so are the gradients (the open_clip#616
world-size bug is a missing or doubled factor here).

Under JAX `keras.distribution.DataParallel` the jitted step sees global
(sharded) arrays, so the loss is already the global one and nothing is
gathered by hand; XLA inserts the collectives.
"""

import keras
from keras import ops


def tf_replica_context():
    """The `tf.distribute` replica context when there are several replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def gather_global_batch(image_embeddings, text_embeddings):
    """All-gathers a replica's embeddings into the global batch.

    Returns `(all_images, all_texts, offset, global_batch)`: the `(B, D)`
    embeddings of every replica in replica order, this replica's first row
    in them, and `B`. Without several `tf.distribute` replicas it returns the
    inputs, `0` and the local batch size.

    Example:
        >>> import numpy as np
        >>> x = np.ones((2, 4), "float32")
        >>> gather_global_batch(x, x)[3]  # doctest: +SKIP
        2
    """
    context = tf_replica_context()
    if context is None:
        return image_embeddings, text_embeddings, 0, ops.shape(image_embeddings)[0]
    import tensorflow as tf

    # Local batch sizes may differ (last partial batch), so gather them too.
    sizes = context.all_gather(tf.shape(image_embeddings)[:1], axis=0)  # (R,)
    replica = context.replica_id_in_sync_group
    offset = tf.reduce_sum(sizes[:replica])
    all_images = context.all_gather(image_embeddings, axis=0)  # (B, D), differentiable
    all_texts = context.all_gather(text_embeddings, axis=0)
    return all_images, all_texts, offset, tf.reduce_sum(sizes)
