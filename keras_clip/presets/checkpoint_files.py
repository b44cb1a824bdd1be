"""Reading weight files into `{name: numpy array}` without running foreign code.

`.safetensors` is read with `safetensors.numpy` (no torch needed). Pickle-based
`.bin` / `.pt` / `.pth` files are read with `torch.load(weights_only=True)`,
which refuses anything but tensors and plain containers; OpenAI's TorchScript
archives are read with `torch.jit.load`, whose loader only rebuilds TorchScript
modules and tensors (no Python code of the file is executed).
"""

import os
import zipfile

import numpy as np

PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


def read_state_dict(path):
    """Returns the tensors stored in `path` as float32-or-native numpy arrays."""
    if not os.path.isfile(path):
        raise ValueError(f"No such checkpoint file: {path}")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith(PICKLE_SUFFIXES):
        return _read_torch(path)
    raise ValueError(
        f"Unknown checkpoint format {path!r}: expected .safetensors, .bin, .pt or .pth."
    )


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


def _is_torchscript(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _read_torch(path):
    torch = _import_torch(path)
    try:
        if _is_torchscript(path):
            state_dict = torch.jit.load(path, map_location="cpu").state_dict()
        else:
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
        key = key[len("module."):] if key.startswith("module.") else key
        if hasattr(value, "detach"):
            arrays[key] = value.detach().float().numpy() if value.is_floating_point() else (
                value.detach().numpy()
            )
        else:
            arrays[key] = np.asarray(value)
    return arrays
