"""Prints per-image parity of keras_clip's preprocessing against the golden file.

For every case in tests/preprocessing_cases.py: max abs difference of the
eager (PIL) path, and mean / max abs difference of the in-graph paths
(`center_crop_tf` for tf.data, the `ImagePreprocessor` layer inside a Keras
model on the current backend; `resized_crop_tf` for the crop cases), in
normalised units, as a Markdown table.

    KERAS_BACKEND=jax python scripts/report_preprocessing_parity.py
"""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))
import preprocessing_cases as cases  # noqa: E402

from keras_clip import preprocessing as pp  # noqa: E402

GOLDEN = np.load(os.path.join(HERE, "..", "tests", "golden", "preprocessing.npz"))


def expected(key):
    grid = GOLDEN[f"u8_{key}"].astype(np.float32)
    return (grid / np.float32(255.0) - np.float32(pp.MEAN)) / np.float32(pp.STD)


def stats(ours, key):
    d = np.abs(np.asarray(ours, np.float32).reshape(expected(key).shape) - expected(key))
    return f"{d.mean():.1e} / {d.max():.3f}"


def main():
    backend = keras.backend.backend()
    print(f"| case | input | S | eager max | tf.data mean / max | in-model ({backend}) mean / max |")
    print("|---|---|---|---|---|---|")
    for name, (_, size) in cases.CASES.items():
        image = cases.load(name)
        eager = pp.preprocess_numpy(image, size)[0]
        graph = pp.center_crop_tf(tf.constant(image), size).numpy()
        hwc = image[:, :, None] if image.ndim == 2 else image
        inputs = keras.Input(hwc.shape, dtype="uint8")
        model = keras.Model(inputs, pp.ImagePreprocessor(size)(inputs))
        in_model = keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(hwc[None])))
        max_eager = np.abs(eager - expected(name)).max()
        print(f"| {name} | {'x'.join(map(str, image.shape))} | {size} | {max_eager:.1e} | "
              f"{stats(graph, name)} | {stats(in_model, name)} |")
    for key, (name, box, size) in cases.CROP_CASES.items():
        image = cases.load(name)
        graph = pp.resized_crop_tf(tf.constant(image), *box, size).numpy()
        print(f"| {key} (resized crop {box}) | {'x'.join(map(str, image.shape))} | {size} | – | "
              f"{stats(graph, key)} | – |")


if __name__ == "__main__":
    main()
