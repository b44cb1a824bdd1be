"""The PIL-matching rules of CLIP preprocessing, stated once for every path.

The reference is open_clip's `image_transform(size, is_train=False)`: PIL
bicubic resize of the shortest side, center crop, `/ 255`, CLIP mean/std.
Each path (`eager`, `graph`, `layer`; an ONNX graph reads the same facts)
follows these rules:

- geometry: `resized_shape` and `center_offset` (integer arithmetic only),
  or for `resize_mode="squash"` (open_clip's, for e.g. DFN-5B weights) both
  sides straight to the output size with no crop (`geometry`);
- pass order: Pillow resizes in two 1-D passes, `horizontal_pass_first`
  says which comes first, and `two_pass_resize` runs them (cropping between
  the passes is exact since they are separable);
- rounding: an 8-bit image is stored as uint8 after every pass (`round_pass`);
- alpha: RGBA is resized premultiplied (`premultiply`) and un-premultiplied
  after (`unpremultiply`), with PIL's integer rounding;
- pixel values (`pixel_rule`, `check_values`, `to_eight_bit_scale`): uint8 as
  is; uint16 scaled to 8 bits as `round(v / 257)`; other integers must hold
  [0, 255]; float must be finite and in [0, 1] (scaled by 255, not rounded).

Array functions take `xp`, a namespace with `floor`, `minimum`, `maximum`,
`where`, `clip` and `cast` (`keras.ops` as is; `NUMPY` here; the graph path
passes a tf one).

Example:
    >>> resized_shape(480, 640, 224), center_offset(298, 224)
    ((224, 298), 37)
"""

import functools
import types

import numpy as np

from keras_clip.config import OPENAI_MEAN as MEAN
from keras_clip.config import OPENAI_STD as STD
from keras_clip.config import RESIZE_MODES

MEAN32 = np.asarray(MEAN, dtype=np.float32)
STD32 = np.asarray(STD, dtype=np.float32)

NUMPY = types.SimpleNamespace(
    floor=np.floor, minimum=np.minimum, maximum=np.maximum, where=np.where, clip=np.clip,
    cast=lambda x, dtype: np.asarray(x).astype(dtype),
)


# ------------------------------------------------------------------ arguments
def check_size(image_size):
    """`image_size` as an int, or a ValueError unless it is a positive int."""
    is_int = isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool)
    if not is_int or image_size < 1:
        raise ValueError(f"image_size must be a positive int; received {image_size!r}.")
    return int(image_size)


def model_options(source):
    """The preprocessing keyword arguments (`image_size`, `mean`, `std`, `resize_mode`)
    a model's weights expect, for `preprocess_numpy` / `ImagePreprocessor`.

    `source`: a `keras_clip.CLIP` (anything with a `CLIPConfig` as `.config`),
    a `CLIPConfig`, or an int image size (then OpenAI's mean and std).

    Example:
        >>> model_options(224)
        {'image_size': 224}
    """
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return {"image_size": check_size(source)}
    config = getattr(source, "config", source)
    preprocessing = getattr(config, "preprocessing", None)
    vision = getattr(config, "vision", None)
    if preprocessing is None or vision is None:
        raise ValueError("Expected a keras_clip CLIP model, a CLIPConfig or an int image size; "
                         f"received {type(source).__name__}.")
    return {"image_size": vision.image_size, "mean": tuple(preprocessing.mean),
            "std": tuple(preprocessing.std), "resize_mode": preprocessing.resize_mode}


def check_resize_mode(resize_mode):
    """`resize_mode` if it is one of `RESIZE_MODES`, else a ValueError."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}; received {resize_mode!r}.")
    return resize_mode


def check_mean_std(mean, std):
    """`(mean, std)` as float32 (3,) arrays: finite, 3 values each, std positive."""
    arrays = []
    for name, values in (("mean", mean), ("std", std)):
        try:
            array = np.asarray(values, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            array = None
        if array is None or array.shape != (3,) or not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be 3 finite numbers (R, G, B); received {values!r}.")
        arrays.append(array)
    if np.any(arrays[1] <= 0):
        raise ValueError(f"std must be positive; received {arrays[1].tolist()}.")
    return tuple(arrays)


def channel_error(received):
    """The ValueError for an image whose channel count is not 1, 3 or 4."""
    return ValueError(
        "Images must have 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, "
        f"HWC layout; received {received} channels."
    )


# ------------------------------------------------------------------- geometry
def resized_shape(height, width, image_size, minimum=min):
    """(new_h, new_w) after resizing the shortest side to `image_size`.

    The long side becomes `image_size * long // short` (ints, or integer
    tensors with `minimum=tf.minimum` and the like).

    Example:
        >>> resized_shape(480, 640, 224)
        (224, 298)
    """
    short = minimum(height, width)
    return (image_size * height) // short, (image_size * width) // short


def geometry(height, width, image_size, resize_mode="shortest", minimum=min):
    """(new_h, new_w, top, left): the resized shape and the crop's corner.

    "shortest": `resized_shape` then a center crop; "squash": `(S, S)`, no crop.

    Example:
        >>> geometry(480, 640, 224), geometry(480, 640, 224, "squash")
        ((224, 298, 0, 37), (224, 224, 0, 0))
    """
    if resize_mode == "squash":
        return image_size, image_size, 0, 0
    new_h, new_w = resized_shape(height, width, image_size, minimum)
    return new_h, new_w, center_offset(new_h, image_size), center_offset(new_w, image_size)


def center_offset(length, crop):
    """torchvision's `int(round((length - crop) / 2))` (half to even), in integers.

    Example:
        >>> [center_offset(n, 0) for n in (1, 3, 5, 7)]
        [0, 2, 2, 4]
    """
    half = (length - crop) // 2
    return half + ((length - crop) % 2) * (half % 2)


@functools.cache
def pillow_picks_pass_order():
    """True for Pillow >= 13, which may run the vertical resize pass first.

    Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when
    the height shrinks much more than the width; older Pillow always runs the
    horizontal pass first. The in-graph paths follow the installed Pillow, so
    they match the eager path (and open_clip) in the same environment;
    without Pillow they follow Pillow 13.
    """
    try:
        from PIL import __version__
    except ImportError:
        return True
    return int(__version__.split(".")[0]) >= 13


def horizontal_pass_first(height, width, new_h, new_w):
    """Whether Pillow resizes horizontally first (ints or tensors).

    Pillow 13: the horizontal pass runs first unless the vertical one shrinks
    the image and `height - new_h > 2 * (width - new_w)` (checked against
    Pillow 13.0 on 2,300 random shapes, no exception).
    """
    if not pillow_picks_pass_order():
        return True
    return (new_h >= height) | ((new_w < width) & (height - new_h <= 2 * (width - new_w)))


def _take(x, axis, window):
    """`x` sliced to `window` = (start, length) along `axis`; all of it for None."""
    if window is None:
        return x
    return x[(slice(None),) * axis + (slice(window[0], window[0] + window[1]),)]


def two_pass_resize(x, height, width, new_h, new_w, resize, crop=None, axis=0, cond=None):
    """Pillow's two 1-D resize passes, in its order; optionally center-cropped.

    Args:
        x: image(s) whose height and width are axes `axis` and `axis + 1`.
        resize: `resize(x, h, w)`, one antialiased bicubic pass, rounded
            as `round_pass`.
        crop: optional `(top, left, size)`, applied along each axis right
            after the pass that made it.
        cond: `cond(pred, true_fn, false_fn)` for a tensor pass order (`tf.cond`).
    """
    rows = None if crop is None else (crop[0], crop[2])
    cols = None if crop is None else (crop[1], crop[2])

    def horizontal_then_vertical():
        y = _take(resize(x, height, new_w), axis + 1, cols)
        return _take(resize(y, new_h, new_w if crop is None else crop[2]), axis, rows)

    def vertical_then_horizontal():
        y = _take(resize(x, new_h, width), axis, rows)
        return _take(resize(y, new_h if crop is None else crop[2], new_w), axis + 1, cols)

    first = horizontal_pass_first(height, width, new_h, new_w)
    if isinstance(first, (bool, np.bool_)):
        return horizontal_then_vertical() if first else vertical_then_horizontal()
    return cond(first, horizontal_then_vertical, vertical_then_horizontal)


# ------------------------------------------------------------- pixel arithmetic
def round_pass(x, eight_bit, xp):
    """One resize pass as PIL stores it: uint8 (round half up, clip) or float (clip)."""
    return xp.clip(xp.floor(x + 0.5) if eight_bit else x, 0.0, 255.0)


def premultiply(rgb, alpha, xp):
    """PIL's RGBA -> RGBa on 8-bit values: `round(c * a / 255)`, integer rounding."""
    t = rgb * alpha + 128.0
    return xp.floor((t + xp.floor(t / 256.0)) / 256.0)


def unpremultiply(rgb, alpha, xp):
    """PIL's RGBa -> RGBA colour: `c * 255 // a` (at most 255); alpha 0 and 255 keep `c`."""
    scaled = xp.minimum(xp.floor(rgb * 255.0 / xp.maximum(alpha, 1.0)), 255.0)
    return xp.where((alpha == 0.0) | (alpha == 255.0), rgb, scaled)


def normalize(x, mean=MEAN32, std=STD32):
    """Values in [0, 255] -> `(x / 255 - mean) / std`, as ToTensor + Normalize."""
    return (x / 255.0 - mean) / std


# --------------------------------------------------------------- pixel values
# rule -> (highest allowed value, what is expected); uint8 / uint16 need no check.
RANGES = {
    "int": (255, "Integer images must hold 8-bit values in [0, 255] (16-bit data as uint16)"),
    "float": (
        1, "Float images must be finite and in [0, 1] (8-bit data as uint8, 16-bit as uint16)"
    ),
    "I": (65535, "PIL mode I images are 16-bit and must hold values in [0, 65535]"),
}


def pixel_rule(dtype):
    """How pixel values of `dtype` are read: "uint8", "uint16", "int" or "float".

    Example:
        >>> pixel_rule("uint16"), pixel_rule("int32"), pixel_rule("float16")
        ('uint16', 'int', 'float')
    """
    if isinstance(dtype, str):
        name = dtype
    else:
        from keras.backend import standardize_dtype

        name = standardize_dtype(dtype)
    if name in ("uint8", "uint16"):
        return name
    if "int" in name:
        return "int"
    if "float" in name:
        return "float"
    raise ValueError(
        "Images must be uint8, uint16, integer or float arrays (or PIL images); "
        f"received dtype {name}."
    )


def check_values(rule, finite, low, high):
    """Raises ValueError when pixel statistics break `rule` (see `RANGES`)."""
    limit, expected = RANGES[rule]
    if not bool(finite):
        raise ValueError(f"{expected}; received NaN or inf values.")
    if not (low >= 0 and high <= limit):
        raise ValueError(f"{expected}; received range [{float(low):.6g}, {float(high):.6g}].")


def sixteen_to_eight(x, xp=NUMPY):
    """16-bit values -> 8-bit ones as `round(v / 257)`, exact integer arithmetic (int32)."""
    return (xp.cast(x, "int32") + 128) // 257


def to_eight_bit_scale(x, rule, xp):
    """float32 values on the 8-bit scale (uint16: `round(v / 257)`; float: `v * 255`)."""
    if rule == "uint16":
        x = sixteen_to_eight(x, xp)
    x = xp.cast(x, "float32")
    return x * 255.0 if rule == "float" else x
