"""Eager CLIP preprocessing of numpy arrays, PIL images and image files, with PIL itself.

PIL does the resize (bicubic, antialiased, RGBA premultiplied, uint8 after
each pass), so the output matches open_clip's transform to float32 rounding
(max abs difference 0 measured on the golden cases). Pixel values follow
`rules.pixel_rule`; PIL images in modes `I;16*` and `I` are 16-bit, mode `F`
follows the float rule, other modes are 8-bit. File paths are opened with
PIL and go the PIL image way (resized in their own mode, then RGB, as
open_clip's transform does).

Example:
    >>> import numpy as np
    >>> preprocess_numpy(np.zeros((300, 400, 3), np.uint8), 224).shape
    (1, 224, 224, 3)
"""

import os

import numpy as np

from keras_clip.preprocessing import rules


def _sixteen_to_eight(array):
    """16-bit values -> uint8 as `round(value / 257)` (`rules.sixteen_to_eight`)."""
    return rules.sixteen_to_eight(array).astype(np.uint8)


def _pil_values(image):
    """A PIL image, or for 16-bit (I;16*, I) and float (F) modes an array."""
    if image.mode == "F":
        return np.asarray(image)
    if image.mode.startswith("I"):
        array = np.asarray(image)
        rules.check_values("I", True, array.min(), array.max())
        return array.astype(np.uint16)
    return image


def _as_hwc(array):
    """Checks an image array's shape; returns it as (H, W, C) with C in 1, 3, 4."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            "Expected an image of shape (H, W, C) or (H, W), or a batch (B, H, W, C); "
            f"received shape {array.shape}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"Received an empty image of shape {array.shape}.")
    if array.shape[2] not in (1, 3, 4):
        raise rules.channel_error(array.shape[2])
    return array


def _open_file(path):
    """The decoded PIL image at `path`, or a ValueError saying what is expected."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No image file at {path!r}; expected a path to an image file, "
                         "an HWC array or a PIL image.")
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path!r} is not an image file Pillow can decode "
                         f"(JPEG, PNG, ...): {error}") from error


def _standardize_image(image):
    """Validates one image; returns a PIL image (8-bit data) or float32 (H, W, 3)."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        image = _open_file(image)
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Received an empty PIL image of size {image.size}.")
        image = _pil_values(image)
        if isinstance(image, Image.Image):
            return image
    if image is None:
        raise ValueError(
            "Received None; expected an HWC image (numpy array, PIL image or file path)."
        )
    array = np.asarray(image)
    rule = rules.pixel_rule(array.dtype.name)
    array = _as_hwc(array)
    if rule in rules.RANGES:
        rules.check_values(rule, np.all(np.isfinite(array)), array.min(), array.max())
    if rule == "float":
        array = array[:, :, :3].astype(np.float32)
        return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
    array = _sixteen_to_eight(array) if rule == "uint16" else array.astype(np.uint8)
    # Mode inferred from the shape: L, RGB or RGBA.
    return Image.fromarray(np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array))


def _resize_crop(image, image_size, resize_mode):
    """PIL bicubic resize (`rules.geometry`) + crop; float32 RGB in [0, 255].

    A PIL image goes through exactly the reference's steps (resize in its own
    mode — RGBA premultiplied, as PIL does — crop, then `convert("RGB")`).
    Float arrays are resized per channel in PIL's float mode, then clipped.
    """
    from PIL import Image

    pil = isinstance(image, Image.Image)
    height, width = (image.height, image.width) if pil else image.shape[:2]
    new_h, new_w, top, left = rules.geometry(height, width, image_size, resize_mode)
    box = (left, top, left + image_size, top + image_size)
    if pil:
        image = image.resize((new_w, new_h), Image.BICUBIC).crop(box).convert("RGB")
        return np.asarray(image, dtype=np.float32)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[:, :, c]))  # mode "F"
            .resize((new_w, new_h), Image.BICUBIC)
            .crop(box)
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1) * np.float32(255.0), 0.0, 255.0)


def _as_list(images):
    """(a non-empty list, whether `images` held several) for one image, a list or a batch."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("Received an empty list of images.")
        return list(images), True
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.shape[0] == 0:
            raise ValueError(f"Received an empty batch of shape {images.shape}.")
        return list(images), True
    return [images], False


def preprocess_numpy(images, image_size, mean=rules.MEAN, std=rules.STD, resize_mode="shortest"):
    """Eager, PIL-exact preprocessing to float32 `(B, S, S, 3)`.

    Args:
        images: an HWC (or HW grayscale) array (values as `pixel_rule`), a PIL
            image, an image file path (str or `pathlib.Path`), a list mixing
            those (any sizes), or a `(B, H, W, C)` array.
        image_size: output side `S`.
        mean, std: per-channel normalisation (OpenAI's by default).
        resize_mode: "shortest" (shortest side to `S`, center crop) or
            "squash" (straight to `S x S`, no crop).

    Example:
        >>> import numpy as np
        >>> preprocess_numpy(np.zeros((300, 400, 3), np.uint8), 224).shape
        (1, 224, 224, 3)
    """
    image_size = rules.check_size(image_size)
    mean, std = rules.check_mean_std(mean, std)
    resize_mode = rules.check_resize_mode(resize_mode)
    items, several = _as_list(images)
    out = np.empty((len(items), image_size, image_size, 3), dtype=np.float32)
    for i, item in enumerate(items):
        try:
            pixels = _resize_crop(_standardize_image(item), image_size, resize_mode)
        except ValueError as error:
            if not several:
                raise
            raise ValueError(f"images[{i}]: {error}") from error
        # As torchvision: uint8 -> float32 / 255, then (x - mean) / std in float32.
        out[i] = rules.normalize(pixels, mean, std)
    return out
