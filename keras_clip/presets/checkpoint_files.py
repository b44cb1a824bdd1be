"""Reading weight files into `{name: numpy array}` without running foreign code.

`.safetensors` is read with `safetensors.numpy` (no torch needed). Pickle-based
`.bin` / `.pt` / `.pth` files are read with `torch.load(weights_only=True)`,
which refuses anything but tensors and plain containers. TorchScript archives
(OpenAI's `.pt` files) are never given to `torch.jit.load`, which runs the
archive's code: `torchscript_archive` reads their tensors with a restricted
unpickler. Every floating tensor must be finite (`check_finite`).
"""

import os

import numpy as np

from keras_clip.presets.torchscript_archive import is_torchscript, read_torchscript

PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


def read_state_dict(path):
    """Returns the tensors stored in `path` as float32-or-native numpy arrays.

    Raises `ValueError` for unreadable files and for NaN/inf in any tensor.
    """
    if not os.path.isfile(path):
        raise ValueError(f"No such checkpoint file: {path}")
    if path.endswith(".safetensors"):
        arrays = _read_safetensors(path)
    elif path.endswith(PICKLE_SUFFIXES) and is_torchscript(path):
        arrays = {key: _float32(value) for key, value in read_torchscript(path).items()}
    elif path.endswith(PICKLE_SUFFIXES):
        arrays = _read_torch(path)
    else:
        raise ValueError(
            f"Unknown checkpoint format {path!r}: expected .safetensors, .bin, .pt or .pth."
        )
    check_finite(arrays, path)
    return arrays


def check_finite(arrays, source):
    """Raises `ValueError` naming the first floating array that holds NaN or inf.

    Args:
        arrays: `{name: array}`, e.g. a state dict.
        source: where the arrays come from (a file name), for the message.

    Example:
        >>> check_finite({"w": np.ones(2)}, "w.npz")
        >>> check_finite({"w": np.array([1.0, np.nan])}, "w.npz")
        Traceback (most recent call last):
        ValueError: w.npz: tensor 'w' holds 1 NaN/inf values; refusing non-finite weights.
    """
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind in "fc" or array.dtype.name.startswith(("bfloat", "float8")):
            bad = array.size - np.count_nonzero(np.isfinite(array))
            if bad:
                raise ValueError(
                    f"{source}: tensor {name!r} holds {bad} NaN/inf values; "
                    "refusing non-finite weights."
                )


def _float32(array):
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _read_safetensors(path):
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise ValueError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {error}"
        ) from error


def _import_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ValueError(
            f"Reading {path} needs PyTorch (pickle-based format). Install it with "
            "`pip install keras-clip[torch]`, or convert the file to .safetensors."
        ) from error
    return torch


def _read_torch(path):
    torch = _import_torch(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise ValueError(
            f"Could not read {path} (truncated, corrupt, or not a weights-only file): {error}"
        ) from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]  # open_clip training checkpoints
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not a state dict.")
    arrays = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if hasattr(value, "detach"):
            arrays[key] = value.detach().float().numpy() if value.is_floating_point() else (
                value.detach().numpy()
            )
        else:
            arrays[key] = np.asarray(value)
    return arrays
