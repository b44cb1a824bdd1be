"""fp16 and int8 variants of an exported ONNX tower.

- fp16: the weights of every MatMul / Gemm / Conv (and the token-embedding
  Gather) are stored in float16 and those ops run in float16; each such op casts
  its activation input to float16 and its result back to float32. Everything
  else — LayerNorm, softmax, residual adds, the activation, the final L2 norm —
  stays float32, so nothing accumulates in float16 where CLIP is known to
  overflow (openai/CLIP#144). Inputs and outputs stay float32. About half the
  file size; fp16 kernels exist on CUDA and CPU providers.
- int8: `onnxruntime.quantization.quantize_dynamic` of the MatMul/Gemm layers:
  uint8 weights (per output channel), activations quantized at run time. Signed
  int8 weights were tried first and lose accuracy on x86 CPUs without VNNI
  (u8 x s8 products saturate in 16 bits): cosine to fp32 0.90 vs 0.998 on the
  tiny test tower, so uint8 is used. onnxruntime's advice to run its
  pre-processing first (symbolic shape inference and graph optimisation,
  meant for static quantization) is not applied and its log line is filtered.
- int8 static (`method="static"`): `quantize_static` in QDQ format after
  onnxruntime's `quant_pre_process` (graph optimisation; its symbolic shape
  inference does not finish on these graphs and is skipped): int8 weights per
  output channel, uint8 activations whose ranges come from calibration inputs
  (min/max over `export.calibration`'s inputs, merged every few batches so
  memory stays flat), for every MatMul / Gemm / Conv that has a
  constant weight (attention's activation x activation MatMuls, LayerNorm,
  softmax and the final L2 norm stay float32). ONNX Runtime fuses the QDQ pairs
  into integer kernels (VNNI / AMX on x86). Cosine to fp32 >= 0.998 on the
  random-weight test towers. A trained model needs calibration images of its
  own domain: on `keras-clip demo`'s model, zero-shot agreement with Keras is
  99.5% calibrated on its training images, 97.6% on the generated set.

Example:
    >>> from keras_clip.export.quantize import to_fp16, to_int8
    >>> to_fp16("image_encoder.onnx", "image_encoder.fp16.onnx")  # doctest: +SKIP
    >>> to_int8("image_encoder.onnx", "image_encoder.int8.onnx")  # doctest: +SKIP
    >>> to_int8("image_encoder.onnx", "image_encoder.int8.onnx", method="static")  # doctest: +SKIP
"""

import contextlib
import logging
import os

FP16_OPS = ("MatMul", "Gemm", "Conv")
INT8_METHODS = ("dynamic", "static")
_MIN_FP16_WEIGHT = 1024  # elements; smaller weights are not worth the casts


def to_fp16(source, target):
    """Writes a float16-weight copy of the ONNX model `source` to `target` (float32 I/O)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(source)
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in list(inferred.graph.value_info) + list(inferred.graph.input)
        + list(inferred.graph.output)
    }
    initializers = {i.name: i for i in graph.initializer}
    for name, tensor in initializers.items():
        types[name] = tensor.data_type
    half = {}  # float32 initializer name -> float16 copy's name

    def half_initializer(name):
        if name not in half:
            array = numpy_helper.to_array(initializers[name]).astype(np.float16)
            half[name] = f"{name}__fp16"
            graph.initializer.append(numpy_helper.from_array(array, half[name]))
        return half[name]

    nodes = []
    for index, node in enumerate(graph.node):
        weight_inputs = [n for n in node.input if n in initializers]
        if node.op_type == "Gather":
            data = node.input[0]
            convert = (
                data in initializers
                and initializers[data].data_type == TensorProto.FLOAT
                and int(np.prod(initializers[data].dims)) >= _MIN_FP16_WEIGHT
            )
            float_inputs = [0] if convert else []
        else:
            convert = (
                node.op_type in FP16_OPS
                and all(types.get(n) == TensorProto.FLOAT for n in node.input if n)
                and any(
                    int(np.prod(initializers[n].dims)) >= _MIN_FP16_WEIGHT for n in weight_inputs
                )
            )
            float_inputs = [i for i, n in enumerate(node.input) if n]
        if not convert:
            nodes.append(node)
            continue
        for i in float_inputs:
            name = node.input[i]
            if name in initializers:
                node.input[i] = half_initializer(name)
            else:
                cast = f"{name}__to_fp16_{index}"
                nodes.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT16))
                node.input[i] = cast
        output = node.output[0]
        node.output[0] = f"{output}__fp16"
        nodes.append(node)
        nodes.append(helper.make_node("Cast", [node.output[0]], [output], to=TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {n for node in graph.node for n in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, target)
    return target


def to_int8(source, target, method="dynamic", calibration_images=None):
    """Writes an int8 copy of the ONNX tower `source` to `target`.

    Args:
        method: "dynamic" (int8 weights, activations quantized at run time) or
            "static" (QDQ, activation ranges calibrated ahead of time).
        calibration_images: for "static" image towers, a folder of images to
            calibrate on; None: generated ones (see `export.calibration`).
    """
    import onnx

    if method not in INT8_METHODS:
        raise ValueError(f"int8 method must be one of {INT8_METHODS}, received {method!r}.")
    if method == "static":
        _quantize_static(source, target, calibration_images)
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _without_preprocessing_advice():
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QUInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
            )
    model = onnx.load(target)
    # quantize_dynamic drops nothing we set, but make sure the metadata survived.
    source_meta = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
    present = {p.key for p in model.metadata_props}
    if set(source_meta) - present:
        for key in sorted(set(source_meta) - present):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, source_meta[key]
        onnx.save_model(model, target)
    onnx.checker.check_model(target)
    return target


def _quantize_static(source, target, calibration_images):
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from keras_clip.export.calibration import calibration_batches

    batches = calibration_batches(source, calibration_images)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(())

        def __len__(self):
            return len(batches)

        def set_range(self, start_index, end_index):
            self.batches = iter(batches[start_index:end_index])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as scratch:
        prepared = os.path.join(scratch, "prepared.onnx")
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            target,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(FP16_OPS),
            # ranges merged every few batches: memory stays flat for big calibration sets
            extra_options={"MatMulConstBOnly": True, "CalibStridedMinMax": _stride(len(batches))},
        )


def _stride(count, most=8):
    """The largest divisor of `count` up to `most` (onnxruntime needs strides that divide it)."""
    return max(d for d in range(1, most + 1) if count % d == 0)


class _PreprocessingAdvice(logging.Filter):
    """Drops onnxruntime's "consider pre-processing before quantization" log record."""

    def filter(self, record):
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice():
    root, advice = logging.getLogger(), _PreprocessingAdvice()
    root.addFilter(advice)  # onnxruntime logs it on the root logger
    try:
        yield
    finally:
        root.removeFilter(advice)


def variant_path(path, variant):
    """`image_encoder.onnx` -> `image_encoder.fp16.onnx` (variant "fp16")."""
    root, ext = os.path.splitext(path)
    return f"{root}.{variant}{ext}"
