"""CLIP image preprocessing with PIL only, identical to the reference pipeline.

Shortest side resized to `size` with PIL bicubic (antialiased), center crop
(offset `round((side - size) / 2)`) — or, for `resize_mode="squash"` (the
manifest's `image.resize_mode`, e.g. DFN-5B weights), both sides straight to
`size` with no crop — then conversion to RGB, `/ 255`, `(x - mean) / std`,
float32 NHWC.

Pixel values: uint8 arrays and 8-bit PIL images as they are; 16-bit data
(uint16 arrays, PIL modes `I;16`, `I;16B`, `I`, e.g. 16-bit grayscale PNGs)
scaled to 8 bits as `round(value / 257)` rather than clipped (as
keras_clip's `ImagePreprocessor`). Pillow itself decodes 16-bit RGB(A) PNGs to
8 bits (the high byte). Float data, PIL mode `F` and other dtypes are refused
with a ValueError. Encoded file bytes (JPEG, PNG, ...) are decoded by Pillow.

Example:
    >>> import numpy as np
    >>> preprocess([np.zeros((300, 400, 3), np.uint8)], 224).shape
    (1, 224, 224, 3)
"""

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from clip_edge.manifest import RESIZE_MODES

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def sixteen_to_eight(array):
    """16-bit values -> uint8 as `round(value / 257)`.

    Example:
        >>> sixteen_to_eight(np.array([0, 128, 129, 65535], np.uint16)).tolist()
        [0, 0, 1, 255]
    """
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _eight_bit_pil(image):
    """A PIL image with 8-bit data: 16-bit modes (I;16*, I) scaled, F refused."""
    if image.mode == "F":
        raise ValueError("PIL mode F (float) images are not supported; give uint8 or 16-bit images.")
    if not image.mode.startswith("I"):
        return image
    array = np.asarray(image)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 65535:
        raise ValueError(
            f"PIL mode {image.mode} images are 16-bit and must hold values in [0, 65535]; "
            f"received range [{low}, {high}]."
        )
    return Image.fromarray(sixteen_to_eight(array))


def _open(source, what):
    """A decoded 8-bit PIL image from a path or a file object; `what` names it in errors."""
    try:
        with Image.open(source) as opened:
            opened.load()
            return _eight_bit_pil(opened.copy())
    except UnidentifiedImageError as error:
        raise ValueError(f"{what} is not an image file Pillow can decode (JPEG, PNG, ...).") from error
    except OSError as error:  # a failed read, or Pillow's decoder on truncated / corrupt data
        if error.errno:
            raise ValueError(f"{what} is not readable ({error.strerror}).") from error
        raise ValueError(f"{what} is truncated or damaged; Pillow could not decode it ({error}).") from error


def to_pil(image):
    """A path, file bytes, PIL image or uint8 / uint16 HWC / HW array -> 8-bit PIL image."""
    if isinstance(image, Image.Image):
        return _eight_bit_pil(image)
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise ValueError(f"No image file at {os.fspath(image)!r}.")
        return _open(image, repr(os.fspath(image)))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(image), f"{len(image)} bytes")
    array = np.asarray(image)
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:
        array = sixteen_to_eight(array)
    if array.dtype != np.uint8:
        raise ValueError(
            "Image arrays must be uint8 (or uint16 for 16-bit data), shape (H, W, 3), (H, W, 4) "
            f"or (H, W); received dtype {array.dtype} shape {array.shape}."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"Expected an image of shape (H, W, 3), (H, W, 4) or (H, W); received {array.shape}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"Received an empty image of shape {array.shape}.")
    return Image.fromarray(np.ascontiguousarray(array))


def check_resize_mode(resize_mode):
    """`resize_mode` if it is one of `RESIZE_MODES`, else a ValueError."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}; received {resize_mode!r:.40}.")
    return resize_mode


def resize_crop(image, size, mean=MEAN, std=STD, resize_mode="shortest"):
    """One PIL image -> normalised float32 `(size, size, 3)`."""
    width, height = image.size
    if check_resize_mode(resize_mode) == "squash":
        new_h = new_w = size
    elif height <= width:
        new_h, new_w = size, (size * width) // height
    else:
        new_h, new_w = (size * height) // width, size
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    image = image.resize((new_w, new_h), Image.BICUBIC)
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    return (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def image_list(images):
    """`images` as a list: a list/tuple, a 4-D array (a batch) or one image.

    Example:
        >>> len(image_list(np.zeros((2, 5, 5, 3), np.uint8)))
        2
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if not isinstance(images, (list, tuple)):
        return [images]
    return list(images)


def each_image(images, function):
    """`[function(image) for image in images]`; a ValueError names the image as `images[i]`."""
    results = []
    for index, image in enumerate(images):
        try:
            results.append(function(image))
        except ValueError as error:
            raise ValueError(f"images[{index}]: {error}") from error
    return results


def preprocess(images, size, mean=MEAN, std=STD, resize_mode="shortest"):
    """Paths / file bytes / PIL images / uint8 or uint16 arrays -> float32 `(B, size, size, 3)`.

    `resize_mode`: "shortest" (shortest side, center crop) or "squash" (straight to size x size).
    """
    check_resize_mode(resize_mode)
    images = image_list(images)
    if not images:
        raise ValueError("Received no images.")
    pixels = each_image(images, lambda image: resize_crop(to_pil(image), size, mean, std, resize_mode))
    return np.stack(pixels).astype(np.float32)
