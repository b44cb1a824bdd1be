"""Strategy / distribution set-up for a training run.

TensorFlow: a `tf.distribute` strategy (build and compile inside its scope);
JAX: `keras.distribution.DataParallel`. The global-batch negatives themselves
are the model's business: see `keras_clip.models.global_batch`.

Example:
    >>> from keras_clip.training.distribution import make_strategy
    >>> strategy = make_strategy("none")  # doctest: +SKIP
"""

import os

import keras
import numpy as np

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
    if backend == "torch":
        raise ValueError(
            f"strategy {name!r} cannot run on the torch backend (Keras has no multi-device "
            "training there); use the tensorflow backend (mirrored, multiworker, tpu) or the "
            "jax backend (data_parallel), or strategy 'none'.")
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


def init_jax_distributed():
    """`jax.distributed.initialize` for a multi-process JAX run, from the environment.

    Reads `JAX_COORDINATOR_ADDRESS` (host:port of process 0), `JAX_NUM_PROCESSES`
    and `JAX_PROCESS_ID` where set (elsewhere JAX detects them on SLURM, TPU
    pods, ...). CPU devices exchange data with gloo. Call it before anything
    else touches JAX.

    Example:
        >>> # JAX_COORDINATOR_ADDRESS=127.0.0.1:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0
        >>> init_jax_distributed()  # doctest: +SKIP
    """
    if keras.backend.backend() != "jax":
        raise ValueError("--jax-distributed needs the jax backend (KERAS_BACKEND=jax), the "
                         f"backend is {keras.backend.backend()!r}.")
    import jax

    options = {}
    for key, variable, kind in (("coordinator_address", "JAX_COORDINATOR_ADDRESS", str),
                                ("num_processes", "JAX_NUM_PROCESSES", int),
                                ("process_id", "JAX_PROCESS_ID", int)):
        if os.environ.get(variable):
            try:
                options[key] = kind(os.environ[variable])
            except ValueError:
                raise ValueError(f"{variable} must be an integer, received "
                                 f"{os.environ[variable]!r}.") from None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**options)


def check_same_across_processes(name, value):
    """Raises a ValueError on every process if JAX processes disagree on the integer `value`.

    Example:
        >>> check_same_across_processes("--batch-size", 256)  # doctest: +SKIP
    """
    import jax

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    values = np.asarray(multihost_utils.process_allgather(np.int64(value))).reshape(-1)
    if len(set(values.tolist())) > 1:
        raise ValueError(f"{name} differs across the {jax.process_count()} processes "
                         f"({values.tolist()} by process); every process must pass the same.")
