"""LiteRT (TensorFlow Lite) export of the towers, from every Keras backend.

Each tower is first written as its token-id/image SavedModel by TensorFlow
(directly on the tensorflow backend; on jax and torch by the TensorFlow
subprocess `saved_model` uses for torch, from a temporary preset with the same
weights), then its `serving_default` concrete function goes through
`tf.lite.TFLiteConverter` (weights frozen into constants; only builtin LiteRT
ops, so `ai-edge-litert` runs the files without TensorFlow). The jax backend's
own jax2tf SavedModel does not convert: with a dynamic batch its gathers lower
to StableHLO `dynamic_gather`, which the converter rejects.

Files, per tower: `<tower>.tflite` (fp32), `<tower>.fp16.tflite` (float16
weights, computed in float32) and `<tower>.int8.tflite` (dynamic-range
quantization: int8 weights, float32 activations).

Interface: one signature, `serving_default`, input `images` float32
`(batch, S, S, 3)` or `token_ids` int32 `(batch, L)`, outputs `embeddings` and
`normalized_embeddings`. The batch axis is dynamic (`shape_signature` -1):
a signature runner resizes it by itself; with the raw tensor API call
`resize_tensor_input` then `allocate_tensors`. The names live in the signature
only; the raw output tensors are named `StatefulPartitionedCall:N`, so read
them through the signature runner.

Example:
    >>> from keras_clip.export.litert import export_litert
    >>> export_litert(model, "out", int8=True)  # doctest: +SKIP
    {'image_encoder': {'fp32': 'image_encoder.tflite', 'int8': 'image_encoder.int8.tflite'}, ...}
"""

import os
import tempfile

import keras

from keras_clip.export.onnx_export import TOWERS
from keras_clip.export.saved_model import (
    export_in_tensorflow_subprocess,
    export_saved_models,
)

VARIANTS = ("fp32", "fp16", "int8")


def litert_path(directory, name, variant="fp32"):
    """`directory/<name>.tflite`, or `<name>.<variant>.tflite` for fp16 / int8."""
    suffix = ".tflite" if variant == "fp32" else f".{variant}.tflite"
    return os.path.join(directory, name + suffix)


def export_litert(model, directory, towers=TOWERS, fp16=False, int8=False, subprocess=True):
    """Writes `<tower>.tflite` (and fp16 / int8 variants) into `directory`.

    Args:
        model: a `keras_clip.CLIP`, on any Keras backend.
        directory: output folder (created; existing files are replaced).
        towers: any of `("image_encoder", "text_encoder")`.
        fp16: also write `<tower>.fp16.tflite` (float16 weights).
        int8: also write `<tower>.int8.tflite` (dynamic-range quantization).
        subprocess: on jax / torch, build the graphs in a TensorFlow subprocess;
            `False` raises a ValueError there instead.

    Returns:
        `{tower: {variant: file name}}` for the files written.

    Example:
        >>> export_litert(model, "out", towers=("text_encoder",))  # doctest: +SKIP
        {'text_encoder': {'fp32': 'text_encoder.tflite'}}
    """
    from keras_clip.models import CLIP

    if not isinstance(model, CLIP):
        raise ValueError(f"`model` must be a keras_clip.CLIP, received {type(model).__name__}.")
    towers = (towers,) if isinstance(towers, str) else tuple(towers)
    if not towers or set(towers) - set(TOWERS):
        raise ValueError(f"`towers` must be a non-empty subset of {TOWERS}, received {towers}.")
    backend = keras.backend.backend()
    if backend != "tensorflow" and not subprocess:
        raise ValueError(
            f"LiteRT export converts TensorFlow graphs; the {backend} backend needs "
            "subprocess=True (a TensorFlow subprocess) or KERAS_BACKEND=tensorflow."
        )
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        if backend == "tensorflow":
            export_saved_models(model, towers, staging)
        else:
            export_in_tensorflow_subprocess(model, towers, staging)
        return litert_from_saved_models(staging, directory, towers, fp16, int8)


def litert_from_saved_models(saved_models, directory, towers=TOWERS, fp16=False, int8=False):
    """Converts the token-id/image SavedModels `saved_models/<tower>` into `directory`.

    Returns `{tower: {variant: file name}}`, as `export_litert`.
    """
    variants = [v for v, wanted in zip(VARIANTS, (True, fp16, int8)) if wanted]
    files = {}
    for name in towers:
        files[name] = {}
        for variant in variants:
            path = litert_path(directory, name, variant)
            with open(path, "wb") as handle:
                handle.write(convert_saved_model(os.path.join(saved_models, name), variant))
            files[name][variant] = os.path.basename(path)
    return files


def convert_saved_model(path, variant="fp32"):
    """The LiteRT flatbuffer (bytes) of SavedModel `path`'s `serving_default`.

    `from_concrete_functions` freezes the weights; `from_saved_model` would keep
    them as resource variables that a signature runner leaves uninitialised (NaN).
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, received {variant!r}.")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    function = loaded.signatures["serving_default"]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no dataset: dynamic range
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def run_litert(path, inputs):
    """`(embeddings, normalized_embeddings)` of a `.tflite` tower, with ai-edge-litert."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    input_name = "images" if inputs.ndim == 4 else "token_ids"
    outputs = runner(**{input_name: inputs})
    return outputs["embeddings"], outputs["normalized_embeddings"]
