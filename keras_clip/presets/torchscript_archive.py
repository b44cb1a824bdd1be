"""Reading TorchScript `.pt` archives (OpenAI's CLIP files) without running them.

`torch.jit.load` compiles the archive's `code/` and runs it (a class's
`__setstate__` runs on load), so a crafted file can create or overwrite files.
This reader never compiles or runs anything: it parses `<root>/data.pkl` with
an unpickler that knows only tensor rebuilding and turns every TorchScript
object into a plain attribute holder; tensors are read with numpy from the
`<root>/data/<key>` records. Any other global in the pickle is refused.
PyTorch is not needed.

Example:
    >>> arrays = read_torchscript("ViT-B-32.pt")  # doctest: +SKIP
    >>> arrays["visual.proj"].shape               # doctest: +SKIP
    (768, 512)
"""

import collections
import pickle
import zipfile

import numpy as np

# Storage classes TorchScript pickles as `torch.<Name>Storage` -> numpy type codes.
_STORAGE_TYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",  # widened to float32 below
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class RefusedArchive(ValueError):
    """The archive holds something this reader will not load."""


class _StorageType:
    def __init__(self, name):
        self.name = name


class _ScriptObject:
    """A TorchScript object's pickled state; its class's methods do not exist here."""

    qualified_name = "?"
    state = None

    def __setstate__(self, state):
        self.state = state


def is_torchscript(path):
    """True when `path` is a zip archive with a TorchScript `code/` folder."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_torchscript(path):
    """Returns `{dotted.name: numpy array}` for the tensors of a TorchScript module.

    Names follow `module.state_dict()` (every tensor attribute of every
    submodule); arrays keep their stored dtype (bfloat16 becomes float32).
    Raises `ValueError` for corrupt archives and for anything but tensors and
    module attributes in the pickle.
    """
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            _collect(_Unpickler(archive).load_module(), "", arrays)
    except RefusedArchive as error:
        raise RefusedArchive(f"{path}: {error}") from None
    except Exception as error:  # zipfile, pickle, numpy and recursion errors alike
        raise ValueError(
            f"{path}: not a readable TorchScript archive (truncated or corrupt?): {error}"
        ) from error
    return arrays


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive):
        self.archive = archive
        self.root = _root(archive)
        self.storages = {}
        byteorder = f"{self.root}/byteorder"
        big = byteorder in archive.namelist() and archive.read(byteorder) == b"big"
        self.byteorder = ">" if big else "<"
        super().__init__(archive.open(f"{self.root}/data.pkl"))

    def load_module(self):
        module = self.load()
        if not isinstance(module, _ScriptObject):
            raise RefusedArchive(
                f"data.pkl holds a {type(module).__name__}, not a TorchScript module."
            )
        return module

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_array
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_TYPES:
            return _StorageType(name)
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (_ScriptObject,), {"qualified_name": f"{module}.{name}"})
        raise RefusedArchive(
            f"refusing the global {module}.{name} in the TorchScript archive; "
            "only tensors and module attributes are read."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise RefusedArchive(f"unexpected persistent id {pid!r} in data.pkl.")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise RefusedArchive(f"malformed storage reference {pid!r}.")
        if key not in self.storages:
            self.storages[key] = self._read_storage(storage_type.name, key, int(numel))
        return self.storages[key]

    def _read_storage(self, type_name, key, numel):
        dtype = np.dtype(self.byteorder + _STORAGE_TYPES[type_name])
        data = self.archive.read(f"{self.root}/data/{key}")
        flat = np.frombuffer(data, dtype, count=numel).astype(dtype.newbyteorder("="))
        if type_name == "BFloat16Storage":  # the high half of a float32
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        return flat


def _root(archive):
    roots = [n[: -len("/data.pkl")] for n in archive.namelist() if n.count("/") == 1
             and n.endswith("/data.pkl")]
    if len(roots) != 1:
        raise RefusedArchive(f"expected one <root>/data.pkl record, found {len(roots)}.")
    return roots[0]


def _rebuild_array(storage, offset, size, stride, *_unused):
    """The tensor `storage[offset:]` viewed with `size` and `stride` (in elements)."""
    if not isinstance(storage, np.ndarray) or len(size) != len(stride):
        raise RefusedArchive(f"malformed tensor record (size {size}, stride {stride}).")
    if min((offset, *size, *stride), default=0) < 0:
        raise RefusedArchive(f"negative offset, size or stride ({offset}, {size}, {stride}).")
    if 0 in size:
        return np.empty(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise RefusedArchive(
            f"a tensor of size {size}, stride {stride} at offset {offset} reads past "
            f"its storage of {storage.size} elements."
        )
    strides = [s * storage.itemsize for s in stride]
    return np.lib.stride_tricks.as_strided(storage[offset:], size, strides).copy()


def _collect(obj, prefix, arrays):
    """Adds the arrays of `obj` and its submodules to `arrays`, named like state_dict."""
    state = {} if obj.state is None else obj.state
    if not isinstance(state, dict):
        raise RefusedArchive(
            f"{obj.qualified_name} stores its state through its own __setstate__, "
            "which runs the archive's code; only plain module attributes are read."
        )
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _collect(value, f"{prefix}{name}.", arrays)
