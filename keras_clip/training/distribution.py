"""Strategy / distribution set-up for a training run.

TensorFlow: a `tf.distribute` strategy (build and compile inside its scope);
JAX: `keras.distribution.DataParallel`. The global-batch negatives themselves
are the model's business: see `keras_clip.models.global_batch`.

Example:
    >>> from keras_clip.training.distribution import make_strategy
    >>> strategy = make_strategy("none")  # doctest: +SKIP
"""

import keras

STRATEGIES = ("none", "mirrored", "multiworker", "tpu", "data_parallel")


def make_strategy(name="none", tpu=None):
    """Returns a distribution for `name` and installs it where the backend needs.

    Args:
        name: `"none"`; TensorFlow: `"mirrored"`, `"multiworker"` (reads
            `TF_CONFIG`), `"tpu"` (`tpu` is the TPU address, `""` for a local
            one); JAX: `"data_parallel"` (`keras.distribution.DataParallel` over
            all devices; call `jax.distributed.initialize()` first for several
            processes).

    Returns:
        A `tf.distribute.Strategy` (build and compile the model inside its
        `scope()`), or None where nothing needs a scope.

    Example:
        >>> strategy = make_strategy("none")
        >>> strategy is None
        True
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}, received {name!r}.")
    backend = keras.backend.backend()
    if name == "none":
        return None
    if name == "data_parallel":
        if backend != "jax":
            raise ValueError(
                f"strategy 'data_parallel' needs the jax backend, the backend is {backend!r}. "
                "Use 'mirrored' / 'multiworker' / 'tpu' with tensorflow."
            )
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        return None
    if backend != "tensorflow":
        raise ValueError(
            f"strategy {name!r} is a tf.distribute strategy and needs the tensorflow "
            f"backend, the backend is {backend!r}."
        )
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
