"""Shared plumbing of the tower models: config round trip and input checks."""

import numpy as np
from keras import ops


def validate_images(images, image_size):
    """Raises a ValueError unless `images` is a float `(B, S, S, 3)` batch."""
    shape = tuple(images.shape)
    expected = f"(batch, {image_size}, {image_size}, 3)"
    if len(shape) != 4:
        raise ValueError(
            f"Expected preprocessed images of shape {expected}, received rank "
            f"{len(shape)} shape {shape}. Use keras_clip.ImagePreprocessor for raw images."
        )
    if shape[-1] != 3:
        raise ValueError(
            f"Expected 3 (RGB) channels last, shape {expected}; received {shape[-1]} "
            f"channels, shape {shape}."
        )
    if tuple(shape[1:3]) != (image_size, image_size):
        raise ValueError(
            f"Expected images of shape {expected}, received {shape}. "
            f"Resize with keras_clip.ImagePreprocessor(image_size={image_size})."
        )
    dtype = str(getattr(images, "dtype", ""))
    if "float" not in dtype:
        raise ValueError(
            f"Expected preprocessed float images (normalised with CLIP's mean/std), "
            f"received dtype {dtype}. Use keras_clip.ImagePreprocessor on uint8 images."
        )


def validate_token_ids(token_ids, context_length, vocab_size):
    """Raises a ValueError unless `token_ids` is an int `(B, L)` batch in range."""
    shape = tuple(token_ids.shape)
    if len(shape) != 2 or shape[1] != context_length:
        raise ValueError(
            f"Expected token ids of shape (batch, {context_length}), received {shape}. "
            "Use keras_clip.CLIPTokenizer to make them."
        )
    dtype = str(getattr(token_ids, "dtype", ""))
    if "int" not in dtype:
        raise ValueError(f"Expected integer token ids, received dtype {dtype}.")
    if shape[0] == 0:
        return
    values = _concrete(token_ids)
    if values is not None:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"Token ids must lie in [0, {vocab_size}), received values in [{low}, {high}]."
            )


def _concrete(x):
    """Returns x as numpy if it holds values now (not a symbolic tensor), else None."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # symbolic / traced tensors have no values
        return None
