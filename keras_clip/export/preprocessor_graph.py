"""`image_preprocessor.onnx`: CLIP image preprocessing as an ONNX graph.

Input `image`, uint8 `(height, width, channels)` of any size: 3 (RGB),
1 (grayscale, broadcast to RGB) or 4 (RGBA, resized premultiplied as PIL
does). Output `images`, float32 `(1, S, S, 3)`: what `ImagePreprocessor(S)`
gives for the same array. The graph follows `preprocessing.rules`: the
resized shape and crop offsets computed in-graph from the input shape
(integer ops; `resize_mode="squash"`: straight to S x S, no crop),
Pillow's two 1-D passes in its order (an `If` on the shape),
each an ONNX `Resize` (opset 18, cubic `a = -0.5`, `antialias=1`,
`half_pixel`, `exclude_outside=1`, which is PIL's clipped and renormalised
kernel) on uint8 so every pass rounds and clips as PIL, the crop right after
the pass that made it, then `/ 255` and mean/std.

Measured against `ImagePreprocessor` on the preprocessing golden set: see
`export/README.md` (only pixels one grey level off, on a float rounding tie).

Example:
    >>> path = export_preprocessor_graph("image_preprocessor.onnx", 224)  # doctest: +SKIP
    >>> run_preprocessor_graph(path, uint8_image).shape  # doctest: +SKIP
    (1, 224, 224, 3)
"""

import numpy as np

from keras_clip.preprocessing import rules

OPSET = 18  # Resize's `antialias` attribute
INPUT_NAME = "image"
OUTPUT_NAME = "images"


class _Graph:
    """A list of ONNX nodes with fresh value names; `g.Op(inputs, **attrs)` adds one."""

    def __init__(self, prefix):
        self.nodes, self.prefix, self.count = [], prefix, 0

    def const(self, value, dtype=np.int64):
        from onnx import numpy_helper

        name = self._fresh()
        tensor = numpy_helper.from_array(np.asarray(value, dtype), name)
        self.nodes.append(_helper().make_node("Constant", [], [name], value=tensor))
        return name

    def __getattr__(self, op_type):
        def add(*inputs, **attrs):
            out = self._fresh()
            self.nodes.append(_helper().make_node(op_type, list(inputs), [out], **attrs))
            return out

        return add

    def _fresh(self):
        self.count += 1
        return f"{self.prefix}{self.count}"


def _helper():
    from onnx import helper

    return helper


def _branch(name, build, outputs_from):
    """An `If` branch graph: `build(g)` adds nodes and returns the output value."""
    from onnx import TensorProto

    g = _Graph(f"{name}_")
    out = build(g)
    g.nodes.append(_helper().make_node("Identity", [out], [outputs_from]))
    result = _helper().make_tensor_value_info(outputs_from, TensorProto.UINT8, None)
    return _helper().make_graph(g.nodes, name, [], [result])


def _if(g, cond, name, then_build, else_build):
    then_graph = _branch(f"{name}_then", then_build, f"{name}_then_out")
    else_graph = _branch(f"{name}_else", else_build, f"{name}_else_out")
    return g.If(cond, then_branch=then_graph, else_branch=else_graph)


# ------------------------------------------------------------------- geometry
def _geometry(g, shape, size, resize_mode):
    """In-graph `rules.geometry`: int64 scalars (height, width, new_h, new_w, top, left)."""
    height = g.Gather(shape, g.const(0))
    width = g.Gather(shape, g.const(1))
    if resize_mode == "squash":  # straight to (S, S); the crop at (0, 0) keeps it all
        return height, width, g.const(size), g.const(size), g.const(0), g.const(0)
    short = g.Max(g.Min(height, width), g.const(1))  # never divide by zero
    new_h = g.Div(g.Mul(g.const(size), height), short)
    new_w = g.Div(g.Mul(g.const(size), width), short)
    return height, width, new_h, new_w, _offset(g, new_h, size), _offset(g, new_w, size)


def _offset(g, length, size):
    """`rules.center_offset(length, size)`: half + (margin % 2) * (half % 2)."""
    margin = g.Sub(length, g.const(size))
    half = g.Div(margin, g.const(2))
    odd = g.Mul(g.Mod(margin, g.const(2)), g.Mod(half, g.const(2)))
    return g.Add(half, odd)


def _horizontal_first(g, height, width, new_h, new_w):
    """In-graph `rules.horizontal_pass_first`: a bool scalar (constant before Pillow 13)."""
    if not rules.pillow_picks_pass_order():
        return g.const(True, np.bool_)
    grows = g.GreaterOrEqual(new_h, height)
    shrinks_w = g.Less(new_w, width)
    dh = g.Sub(height, new_h)
    dw2 = g.Mul(g.const(2), g.Sub(width, new_w))
    return g.Or(grows, g.And(shrinks_w, g.LessOrEqual(dh, dw2)))


# --------------------------------------------------------------------- passes
def _resize(g, x, rows, cols):
    """One antialiased bicubic pass of `x` (1, H, W, C) uint8 to (1, rows, cols, C)."""
    channels = g.Gather(g.Shape(x), g.const([3]))
    sizes = g.Concat(g.const([1]), g.Reshape(rows, g.const([1])),
                     g.Reshape(cols, g.const([1])), channels, axis=0)
    return g.Resize(
        x, "", "", sizes, mode="cubic", cubic_coeff_a=-0.5, antialias=1, exclude_outside=1,
        coordinate_transformation_mode="half_pixel",
    )


def _crop(g, x, axis, start, size):
    """`x[start : start + size]` along `axis`."""
    start = g.Reshape(start, g.const([1]))
    return g.Slice(x, start, g.Add(start, g.const([size])), g.const([axis]))


def _two_passes(g, x, geometry, size):
    """`rules.two_pass_resize` with the crop: (1, H, W, C) -> (1, S, S, C) uint8."""
    height, width, new_h, new_w, top, left = geometry

    def horizontal_then_vertical(b):
        y = _crop(b, _resize(b, x, height, new_w), 2, left, size)
        return _crop(b, _resize(b, y, new_h, b.const(size)), 1, top, size)

    def vertical_then_horizontal(b):
        y = _crop(b, _resize(b, x, new_h, width), 1, top, size)
        return _crop(b, _resize(b, y, b.const(size), new_w), 2, left, size)

    first = _horizontal_first(g, height, width, new_h, new_w)
    return _if(g, first, "pass_order", horizontal_then_vertical, vertical_then_horizontal)


# ---------------------------------------------------------------------- alpha
def _premultiplied(g, image, is_rgba):
    """RGBA -> RGBa (`rules.premultiply`, uint8); other images unchanged."""

    def premultiply(b):
        x = b.Cast(image, to=1)  # float32
        rgb = b.Slice(x, b.const([0]), b.const([3]), b.const([2]))
        alpha = b.Slice(x, b.const([3]), b.const([4]), b.const([2]))
        t = b.Add(b.Mul(rgb, alpha), b.const(128.0, np.float32))
        rgb = b.Floor(b.Div(b.Add(t, b.Floor(b.Div(t, b.const(256.0, np.float32)))),
                            b.const(256.0, np.float32)))
        return b.Cast(b.Concat(rgb, alpha, axis=2), to=2)  # uint8

    return _if(g, is_rgba, "premultiply", premultiply, lambda b: b.Identity(image))


def _to_rgb(g, pixels, is_rgba):
    """(1, S, S, C) uint8 -> (1, S, S, 3) float32: un-premultiplied RGBa, gray broadcast."""

    def unpremultiply(b):
        x = b.Cast(pixels, to=1)
        rgb = b.Slice(x, b.const([0]), b.const([3]), b.const([3]))
        alpha = b.Slice(x, b.const([3]), b.const([4]), b.const([3]))
        scaled = b.Min(b.Floor(b.Div(b.Mul(rgb, b.const(255.0, np.float32)),
                                     b.Max(alpha, b.const(1.0, np.float32)))),
                       b.const(255.0, np.float32))
        keep = b.Or(b.Equal(alpha, b.const(0.0, np.float32)),
                    b.Equal(alpha, b.const(255.0, np.float32)))
        return b.Cast(b.Where(keep, rgb, scaled), to=2)

    def broadcast(b):  # channel indices [0, 1, 2] for RGB, [0, 0, 0] for grayscale
        last = b.Sub(b.Gather(b.Shape(pixels), b.const([3])), b.const([1]))
        return b.Gather(pixels, b.Min(b.const([0, 1, 2]), last), axis=3)

    return _if(g, is_rgba, "unpremultiply", unpremultiply, broadcast)


# -------------------------------------------------------------------- the graph
CHECK_NODE = "image must be a non-empty uint8 (height, width, channels) array, channels 1, 3 or 4"


def _checked_shape(g):
    """The input's shape, through a node named `CHECK_NODE` that fails on a bad image.

    ONNX has no assert: a Reshape of one element to two fails when the image is
    empty or has 2 or more than 4 channels, and ORT's error names the node.
    """
    shape = g.Shape(INPUT_NAME)
    height, width, channels = (g.Gather(shape, g.const(i)) for i in range(3))
    good_channels = g.Or(g.Equal(channels, g.const(3)),
                         g.Or(g.Equal(channels, g.const(1)), g.Equal(channels, g.const(4))))
    ok = g.And(g.And(g.Greater(height, g.const(0)), g.Greater(width, g.const(0))), good_channels)
    target = g.Where(ok, g.const([1]), g.const([2]))
    g.nodes.append(_helper().make_node("Reshape", [g.const([0]), target], ["checked_zero"],
                                       name=CHECK_NODE))
    return g.Add(shape, "checked_zero")  # (3,) int64, after the check


def preprocessor_model(image_size, mean=rules.MEAN, std=rules.STD, resize_mode="shortest"):
    """The ONNX `ModelProto` of `image_preprocessor.onnx` for output side `image_size`."""
    from onnx import TensorProto, checker

    size = rules.check_size(image_size)
    resize_mode = rules.check_resize_mode(resize_mode)
    mean, std = _channel_values(mean, "mean"), _channel_values(std, "std")
    if np.any(std <= 0):
        raise ValueError(f"std must be positive; received {std.tolist()}.")
    g = _Graph("v")
    shape = _checked_shape(g)
    is_rgba = g.Equal(g.Gather(shape, g.const(2)), g.const(4))
    image = g.Unsqueeze(_premultiplied(g, INPUT_NAME, is_rgba), g.const([0]))  # (1, H, W, C)
    pixels = _two_passes(g, image, _geometry(g, shape, size, resize_mode), size)  # (1, S, S, C)
    x = g.Cast(_to_rgb(g, pixels, is_rgba), to=1)  # (1, S, S, 3) in [0, 255]
    x = g.Div(g.Sub(g.Div(x, g.const(255.0, np.float32)), g.const(mean, np.float32)),
              g.const(std, np.float32))
    g.nodes.append(_helper().make_node("Identity", [x], [OUTPUT_NAME]))
    graph = _helper().make_graph(
        g.nodes, "image_preprocessor",
        [_helper().make_tensor_value_info(INPUT_NAME, TensorProto.UINT8,
                                          ["height", "width", "channels"])],
        [_helper().make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, size, size, 3])],
    )
    model = _helper().make_model(
        graph, opset_imports=[_helper().make_opsetid("", OPSET)], producer_name="keras_clip"
    )
    checker.check_model(model, full_check=True)
    return model


BYTES_INPUT_NAME = "image_bytes"
BYTES_CHECK_NODE = "decoded image must have 1 (grayscale) or 3 (RGB) channels; CMYK JPEGs are not supported"
DECODER_DOMAIN = "com.microsoft.extensions"  # onnxruntime-extensions' DecodeImage


def bytes_preprocessor_model(image_size, mean=rules.MEAN, std=rules.STD, resize_mode="shortest"):
    """`image_bytes_preprocessor.onnx`: a PNG or JPEG file's bytes -> `images` (1, S, S, 3).

    onnxruntime-extensions' `DecodeImage` (libpng / libjpeg; RGB, grayscale
    JPEGs as one channel, PNG alpha dropped) feeds the nodes of
    `preprocessor_model`. Needs the extensions library registered.
    """
    from onnx import TensorProto

    model = preprocessor_model(image_size, mean, std, resize_mode)
    graph, h = model.graph, _helper()
    g = _Graph("bytes_")
    decoded = g.DecodeImage(BYTES_INPUT_NAME, domain=DECODER_DOMAIN, color_space="rgb")
    channels = g.Gather(g.Shape(decoded), g.const(2))
    ok = g.Or(g.Equal(channels, g.const(1)), g.Equal(channels, g.const(3)))
    target = g.Where(ok, g.const([1]), g.const([2]))
    g.nodes.append(h.make_node("Reshape", [g.const([0]), target], ["bytes_checked"], name=BYTES_CHECK_NODE))
    g.nodes.append(h.make_node("Cast", ["bytes_checked"], ["bytes_checked_u8"], to=TensorProto.UINT8))
    g.nodes.append(h.make_node("Add", [decoded, "bytes_checked_u8"], [INPUT_NAME]))  # (H, W, C) after the check
    nodes = g.nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.append(h.make_tensor_value_info(BYTES_INPUT_NAME, TensorProto.UINT8, ["bytes"]))
    graph.name = "image_bytes_preprocessor"
    model.opset_import.append(h.make_opsetid(DECODER_DOMAIN, 1))
    return model


def export_bytes_preprocessor_graph(path, image_size, mean=rules.MEAN, std=rules.STD,
                                    resize_mode="shortest"):
    """Writes `image_bytes_preprocessor.onnx` (PNG / JPEG bytes -> (1, S, S, 3)) to `path`.

    Running it needs onnxruntime-extensions' library registered in the session
    (`onnxruntime_extensions.get_library_path()`). Its decoder ends the process
    on bytes that are neither PNG nor JPEG and may not return on a truncated
    JPEG: check the file before (`clip_edge` decodes it with Pillow first).

    Args:
        path, image_size, mean, std, resize_mode: as `export_preprocessor_graph`.

    Returns:
        `path`.

    Example:
        >>> export_bytes_preprocessor_graph("image_bytes_preprocessor.onnx", 224)  # doctest: +SKIP
        'image_bytes_preprocessor.onnx'
    """
    model = bytes_preprocessor_model(image_size, mean, std, resize_mode)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def _channel_values(values, name):
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be 3 finite numbers (R, G, B); received {values!r}.")
    return array


def export_preprocessor_graph(path, image_size, mean=rules.MEAN, std=rules.STD,
                              resize_mode="shortest"):
    """Writes `image_preprocessor.onnx` (uint8 HWC image -> (1, S, S, 3)) to `path`.

    Args:
        path: the `.onnx` file to write.
        image_size: output side `S` (the image tower's input size).
        mean, std: per-channel normalisation (CLIP's by default).
        resize_mode: "shortest" (shortest side, center crop) or "squash"
            (straight to `S x S`), as `ImagePreprocessor`.

    Returns:
        `path`.

    Example:
        >>> export_preprocessor_graph("image_preprocessor.onnx", 224)  # doctest: +SKIP
        'image_preprocessor.onnx'
    """
    model = preprocessor_model(image_size, mean, std, resize_mode)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def run_preprocessor_graph(session_or_path, image):
    """Runs the graph on one uint8 image `(H, W, C)` (or `(H, W)`); float32 (1, S, S, 3).

    Args:
        session_or_path: an `onnxruntime.InferenceSession` or the `.onnx` path.
        image: uint8 array, C in 1, 3, 4, height and width at least 1.

    Example:
        >>> run_preprocessor_graph("image_preprocessor.onnx", np.zeros((5, 7, 3), np.uint8))  # doctest: +SKIP
    """
    session = session_or_path
    if isinstance(session, str):
        import onnxruntime

        session = onnxruntime.InferenceSession(session, providers=["CPUExecutionProvider"])
    image = _checked_image(image)
    return session.run([OUTPUT_NAME], {INPUT_NAME: image})[0]


def _checked_image(image):
    """`image` as a contiguous uint8 (H, W, C) array, or a ValueError saying what is expected."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, C); received dtype {image.dtype}.")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"image must have shape (H, W) or (H, W, C) with C in 1, 3, 4; received {image.shape}."
        )
    if 0 in image.shape[:2]:
        raise ValueError(f"image must not be empty; received shape {image.shape}.")
    return np.ascontiguousarray(image)
