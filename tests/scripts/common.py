"""Shared pieces of the subprocess training scripts: tiny model, fixed data, weight dumps."""

import os

import numpy as np

TINY = {
    "name": "tiny_vit",
    "embed_dim": 32,
    "vision": {"type": "vit", "image_size": 32, "width": 64, "layers": 1, "patch_size": 16},
    "text": {"width": 64, "layers": 1, "context_length": 77, "vocab_size": 1000},
}


def two_host_devices(backend):
    """Selects `backend` and gives it two CPU devices; call before importing keras.

    tensorflow: two logical CPUs (for MirroredStrategy); jax: two host devices
    (for keras.distribution.DataParallel).
    """
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        os.environ["JAX_PLATFORMS"] = "cpu"
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def fixed_batch(size, seed=1):
    """`size` random image/token pairs, the same for every process and backend."""
    rng = np.random.default_rng(seed)
    return {
        "images": rng.normal(size=(size, 32, 32, 3)).astype("float32"),
        "token_ids": rng.integers(1, 1000, size=(size, 77)).astype("int32"),
    }


def initial_weights(seed=0):
    """Weights of a tiny CLIP built with `seed` (as numpy, backend independent)."""
    import keras

    from keras_clip import CLIP

    keras.utils.set_random_seed(seed)
    return [np.asarray(w) for w in CLIP(TINY).get_weights()]


def save_weights(model, path):
    np.savez(path, *[np.asarray(w) for w in model.get_weights()])


def load_npz(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def relative_difference(a, b):
    """The largest `max |x - y| / max |x|` over the weight lists `a` and `b`."""
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-12))
               for x, y in zip(a, b))
