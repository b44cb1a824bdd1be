"""ONNX export of one tower, by the route that works on each Keras backend.

- tensorflow: a `tf.function` over the tower, converted by `tf2onnx`.
- jax: a pure function over the tower's `stateless_call`, converted by `jax2onnx`.
- torch: `torch.onnx.export(..., dynamo=True, dynamic_shapes=...)`.

Every route gives the same graph interface: one input (`images` float32
`(batch, S, S, 3)` or `token_ids` int32 `(batch, L)`), outputs `embeddings`
(projected, unnormalised) and `normalized_embeddings` (unit L2 norm), a
symbolic `batch` axis, and the manifest's values in `metadata_props`.

Example:
    >>> import keras_clip
    >>> from keras_clip.export.onnx_export import export_onnx
    >>> model = keras_clip.from_preset("vit_b32", weights=None)
    >>> export_onnx(model, "text_encoder", "text_encoder.onnx")  # doctest: +SKIP
"""

import contextlib
import json
import os

import keras

from keras_clip.layers import l2_normalize

TOWERS = ("image_encoder", "text_encoder")
OUTPUT_NAMES = ("embeddings", "normalized_embeddings")
DEFAULT_OPSET = 18


def tower_spec(model, name):
    """`(tower, input name, input shape without batch, dtype)` of tower `name`."""
    if name == "image_encoder":
        size = model.config.vision.image_size
        return model.image_encoder, "images", (size, size, 3), "float32"
    if name == "text_encoder":
        return model.text_encoder, "token_ids", (model.config.text.context_length,), "int32"
    raise ValueError(f"Unknown tower {name!r}; expected one of {TOWERS}.")


def with_normalized(embeddings):
    """`(embeddings, embeddings / max(||embeddings||, 1e-12))` with keras.ops."""
    return embeddings, l2_normalize(embeddings)


def export_onnx(model, name, path, opset=DEFAULT_OPSET, metadata=None):
    """Writes tower `name` of `model` to the ONNX file `path`; returns the route used.

    Args:
        model: a `keras_clip.CLIP`.
        name: `"image_encoder"` or `"text_encoder"`.
        path: the `.onnx` file to write.
        opset: ONNX opset (17 or newer: LayerNormalization is an opset-17 op).
        metadata: dict stored in the graph's `metadata_props` (values JSON-encoded
            unless they are strings).
    """
    if not isinstance(opset, int) or opset < 17:
        raise ValueError(f"`opset` must be an int >= 17, received {opset!r}.")
    backend = keras.backend.backend()
    routes = {"tensorflow": _tensorflow_proto, "jax": _jax_proto, "torch": _torch_proto}
    if backend not in routes:
        raise ValueError(f"ONNX export supports {sorted(routes)}; the backend is {backend!r}.")
    tower, input_name, shape, dtype = tower_spec(model, name)
    proto = routes[backend](tower, input_name, shape, dtype, opset)
    finalize(proto, input_name, metadata or {}, graph_name=name)
    save_model(proto, path)
    return {"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "torch.onnx(dynamo)"}[backend]


def finalize(proto, input_name, metadata, graph_name):
    """Names the batch axis, checks the interface, adds metadata, runs the checker."""
    import onnx

    graph = proto.graph
    graph.name = graph_name
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    if inputs != [input_name] or outputs != list(OUTPUT_NAMES):
        raise RuntimeError(
            f"Exported graph has inputs {inputs} and outputs {outputs}; expected "
            f"[{input_name!r}] and {list(OUTPUT_NAMES)}."
        )
    for value in list(graph.input) + list(graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    proto.producer_name = "keras_clip"
    onnx.checker.check_model(proto, full_check=True)


def save_model(proto, path):
    """Saves `proto`; weights go to an external-data file only past protobuf's 2 GB."""
    import onnx

    if proto.ByteSize() > 2_000_000_000:
        onnx.save_model(
            proto,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=os.path.basename(path) + ".data",
        )
    else:
        onnx.save_model(proto, path)


# ---------------------------------------------------------------- tensorflow
def _tensorflow_proto(tower, input_name, shape, dtype, opset):
    """tf2onnx on a function that takes the weights as inputs.

    Freezing the weights into the TF graph first makes tf2onnx's graph passes
    use about 3 GB of memory per ViT layer (13 GB for 4 layers of ViT-B/32);
    with the weights as graph inputs they handle only small constants. The
    inputs then become ONNX initializers and the graph is constant-folded.
    """
    import onnx.numpy_helper
    import onnxscript.optimizer
    import tensorflow as tf
    import tf2onnx

    trainable = list(tower.trainable_variables)
    non_trainable = list(tower.non_trainable_variables)
    values = [v.numpy() for v in trainable + non_trainable]
    weight_names = [f"keras_clip_weight_{i}" for i in range(len(values))]
    spec = tf.TensorSpec((None, *shape), dtype, name=input_name)
    weight_specs = [
        tf.TensorSpec(value.shape, value.dtype, name=name)
        for value, name in zip(values, weight_names)
    ]
    count = len(trainable)

    @tf.function(input_signature=[spec, *weight_specs])
    def serve(x, *weights):
        embeddings, _ = tower.stateless_call(
            list(weights[:count]), list(weights[count:]), x, training=False
        )
        embeddings, normalized = with_normalized(embeddings)
        return {OUTPUT_NAMES[0]: embeddings, OUTPUT_NAMES[1]: normalized}

    proto, _ = tf2onnx.convert.from_function(
        serve, input_signature=[spec, *weight_specs], opset=opset
    )
    by_name = dict(zip(weight_names, values))
    kept = [i for i in proto.graph.input if i.name not in by_name]
    for graph_input in proto.graph.input:
        if graph_input.name in by_name:
            proto.graph.initializer.append(
                onnx.numpy_helper.from_array(by_name[graph_input.name], graph_input.name)
            )
    del proto.graph.input[:]
    proto.graph.input.extend(kept)
    _sort_outputs(proto)
    return onnxscript.optimizer.optimize(proto)


def _sort_outputs(proto):
    """Orders graph outputs as OUTPUT_NAMES (tf2onnx keeps dict order)."""
    outputs = {o.name: o for o in proto.graph.output}
    if set(outputs) == set(OUTPUT_NAMES):
        ordered = [type(outputs[n])() for n in OUTPUT_NAMES]
        for target, n in zip(ordered, OUTPUT_NAMES):
            target.CopyFrom(outputs[n])
        del proto.graph.output[:]
        proto.graph.output.extend(ordered)


# ----------------------------------------------------------------------- jax
@contextlib.contextmanager
def _jax2onnx_arange_fix():
    """Keras calls `jnp.arange(n, None, ...)`; jax2onnx 0.17's patched arange
    rejects the explicit `None`. Drop it while converting."""
    import jax.numpy as jnp
    from keras.src.backend.jax import numpy as keras_jax_numpy

    original = keras_jax_numpy.arange

    def arange(start, stop=None, step=None, dtype=None):
        if stop is None and step is None:
            return jnp.arange(start, dtype=dtype or "int32")
        return original(start, stop, step=step, dtype=dtype)

    keras_jax_numpy.arange = arange
    try:
        yield
    finally:
        keras_jax_numpy.arange = original


def _jax_proto(tower, input_name, shape, dtype, opset):
    import jax
    import numpy as np
    from jax2onnx import to_onnx

    trainable = [v.value for v in tower.trainable_variables]
    non_trainable = [v.value for v in tower.non_trainable_variables]

    def serve(x):
        embeddings, _ = tower.stateless_call(trainable, non_trainable, x, training=False)
        return with_normalized(embeddings)

    example = np.zeros((1, *shape), dtype)
    serve(example)  # one eager call first: builds anything still lazy
    symbolic = jax.ShapeDtypeStruct(jax.export.symbolic_shape(", ".join(["batch", *map(str, shape)])), dtype)
    with _jax2onnx_arange_fix():
        proto = to_onnx(
            serve,
            [symbolic],
            opset=opset,
            model_name="keras_clip",
            input_names=[input_name],
            output_names=list(OUTPUT_NAMES),
        )
    # jax2onnx leaves weight transposes, reshapes (the patch embedding's matmul
    # kernel) and batch-norm arithmetic unfolded; fold them, whatever their size,
    # so weights are plain initializers (smaller graph, fp16- and int8-able).
    import onnxscript.optimizer

    limit = 1 << 40
    return onnxscript.optimizer.optimize(proto, input_size_limit=limit, output_size_limit=limit)


# --------------------------------------------------------------------- torch
def _torch_proto(tower, input_name, shape, dtype, opset):
    import numpy as np
    import torch

    class Serve(torch.nn.Module):
        def __init__(self, tower):
            super().__init__()
            self.tower = tower

        def forward(self, x):
            return with_normalized(self.tower(x, training=False))

    module = Serve(tower).eval()
    example = torch.from_numpy(np.zeros((2, *shape), dtype))
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[input_name],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    return program.model_proto
