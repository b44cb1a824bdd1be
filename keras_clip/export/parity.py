"""Compare exported towers with the Keras model on the same inputs.

Example:
    >>> from keras_clip.export.parity import onnx_parity
    >>> onnx_parity(model, "out/image_encoder.onnx", "image_encoder")  # doctest: +SKIP
    {'max_abs': 1.2e-06, 'magnitude': 2.9, 'relative': 4.1e-07, 'min_cosine': 1.0, ...}
"""

import numpy as np

from keras_clip.export.onnx_export import tower_spec
from keras_clip.preprocessing import MEAN, STD
from keras_clip.tokenizer import END_TOKEN_ID, START_TOKEN_ID


def sample_inputs(model, name, batch, seed=0):
    """Realistic inputs: normalised random pixels, or captions of random length."""
    rng = np.random.default_rng(seed)
    _, _, shape, _ = tower_spec(model, name)
    if name == "image_encoder":
        pixels = rng.random((batch, *shape), dtype=np.float32)
        return ((pixels - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)
    length = shape[0]
    vocab = model.config.text.vocab_size
    start, end = min(START_TOKEN_ID, vocab - 2), min(END_TOKEN_ID, vocab - 1)  # end: the largest id
    ids = np.zeros((batch, length), np.int32)
    for row in range(batch):
        words = int(rng.integers(1, length - 1))
        ids[row, 0] = start
        ids[row, 1 : words + 1] = rng.integers(1, start, words)
        ids[row, words + 1] = end
    return ids


def keras_embeddings(model, name, inputs):
    """The Keras tower's projected embeddings as float32 numpy."""
    from keras import ops

    tower = tower_spec(model, name)[0]
    return np.asarray(ops.convert_to_numpy(tower(inputs, training=False)), np.float32)


def run_onnx(path, inputs, providers=("CPUExecutionProvider",)):
    """`(embeddings, normalized_embeddings)` of an ONNX tower, all optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=list(providers))
    name = session.get_inputs()[0].name
    return session.run(["embeddings", "normalized_embeddings"], {name: inputs})


def compare(reference, candidate):
    """max abs difference, its ratio to max |reference|, and the smallest row cosine."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    max_abs = float(np.max(np.abs(reference - candidate)))
    magnitude = float(np.max(np.abs(reference)))
    cosine = np.sum(reference * candidate, -1) / (
        np.linalg.norm(reference, axis=-1) * np.linalg.norm(candidate, axis=-1) + 1e-30
    )
    return {
        "max_abs": max_abs,
        "magnitude": magnitude,
        "relative": max_abs / max(magnitude, 1e-30),
        "min_cosine": float(np.min(cosine)),
        "finite": bool(np.all(np.isfinite(candidate))),
    }


def onnx_parity(model, path, name, batch_sizes=(1, 5), seed=0):
    """Worst `compare` figures of the ONNX file `path` over `batch_sizes`."""
    results = []
    for batch in batch_sizes:
        inputs = sample_inputs(model, name, batch, seed + batch)
        reference = keras_embeddings(model, name, inputs)
        results.append(compare(reference, run_onnx(path, inputs)[0]))
    return _worst(results)


def saved_model_parity(model, path, name, batch_sizes=(1, 5), seed=0):
    """Worst `compare` figures of the SavedModel `path` (serving_default) over `batch_sizes`."""
    import tensorflow as tf

    signature = load_saved_model(path).signatures["serving_default"]
    input_name = tower_spec(model, name)[1]
    results = []
    for batch in batch_sizes:
        inputs = sample_inputs(model, name, batch, seed + batch)
        reference = keras_embeddings(model, name, inputs)
        outputs = signature(**{input_name: tf.constant(inputs)})
        results.append(compare(reference, outputs["embeddings"].numpy()))
    return _worst(results)


def _worst(results):
    return {
        "max_abs": max(r["max_abs"] for r in results),
        "magnitude": max(r["magnitude"] for r in results),
        "relative": max(r["relative"] for r in results),
        "min_cosine": min(r["min_cosine"] for r in results),
        "finite": all(r["finite"] for r in results),
    }


def load_saved_model(path):
    """`tf.saved_model.load`, after registering tensorflow-text's ops (text tower)."""
    import tensorflow as tf

    try:
        import tensorflow_text  # noqa: F401  (registers RegexSplitWithOffsets etc.)
    except ImportError:
        pass
    return tf.saved_model.load(str(path))
