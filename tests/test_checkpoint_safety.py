"""Checkpoint files that attack the reader: TorchScript code, foreign globals, NaN/inf.

Every archive is built here with `torch.jit.save` (tiny modules), and the
malicious ones by editing a genuine archive, as an attacker would.
"""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import keras_clip
from keras_clip.presets.checkpoint_files import check_finite, read_state_dict
from keras_clip.presets.openai_checkpoint import state_dict_from_model
from tests.conftest import tiny_config

torch = pytest.importorskip("torch")


class Block(torch.nn.Module):
    def __init__(self, inputs=3):
        super().__init__()
        self.linear = torch.nn.Linear(inputs, 4)
        self.norm = torch.nn.BatchNorm1d(4)  # running stats: buffers

    def forward(self, x):
        return self.norm(self.linear(x))


class Tower(torch.nn.Module):
    """Nested submodules, fp16 and fp32 tensors, views sharing one storage."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block(3), Block(4)])
        self.proj = torch.nn.Parameter(torch.randn(4, 2).half())
        shared = torch.randn(6, 5)
        self.register_buffer("transposed", shared.t())  # stride (1, 5)
        self.register_buffer("window", shared[1:3, 2:])  # offset 7 in the same storage
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return (x @ self.proj.float()) * self.logit_scale


class Stateful(torch.nn.Module):
    """A module with its own __getstate__/__setstate__: its code runs on torch.jit.load."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2, 2))

    def forward(self, x):
        return x @ self.weight

    @torch.jit.export
    def __getstate__(self):
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        self.weight = state[0]
        self.training = state[1]


def rewrite(source, target, edit):
    """Copies the zip `source` to `target`, passing each record through `edit(name, data)`."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for info in archive.infolist():
            out.writestr(info, edit(info.filename, archive.read(info)))


def malicious_archive(tmp_path, marker, victim):
    """A genuine archive whose __setstate__ is edited to create `marker`, overwrite `victim`."""
    genuine = tmp_path / "genuine.pt"
    torch.jit.save(torch.jit.script(Stateful()), str(genuine))
    payload = (
        f'    _0 = torch.from_file("{marker}", True, 8)\n    print(_0)\n'
        f'    _1 = torch.fill_(torch.from_file("{victim}", True, 4, dtype=0), 88)\n'
        "    print(_1)\n"
    )

    anchor, edited = "    self.training = (state)[1]\n", []

    def edit(name, data):
        if "/code/" in name and name.endswith(".py") and anchor.encode() in data:
            edited.append(name)
            return data.decode().replace(anchor, anchor + payload).encode()
        return data

    path = tmp_path / "evil.pt"
    rewrite(genuine, path, edit)
    assert len(edited) == 1
    return path


def transformers_folder(tmp_path, weights):
    """A transformers CLIP folder whose only weights file is `weights` as pytorch_model.bin."""
    folder = tmp_path / "hf"
    folder.mkdir()
    section = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
               "intermediate_size": 16}
    config = {
        "model_type": "clip",
        "projection_dim": 8,
        "vision_config": {**section, "image_size": 32, "patch_size": 16},
        "text_config": {**section, "max_position_embeddings": 77, "vocab_size": 100},
    }
    (folder / "config.json").write_text(json.dumps(config))
    os.replace(weights, folder / "pytorch_model.bin")
    return folder


LOADERS = {
    "read_state_dict": lambda path, tmp_path: read_state_dict(str(path)),
    "from_preset": lambda path, tmp_path: keras_clip.from_preset(str(path)),
    "transformers_bin": lambda path, tmp_path: keras_clip.from_preset(
        str(transformers_folder(tmp_path, path))
    ),
}


def test_genuine_torchscript_archive_reads_like_its_state_dict(tmp_path):
    module = Tower().eval()
    path = str(tmp_path / "tower.pt")
    torch.jit.save(torch.jit.trace(module, torch.randn(2, 3)), path)
    arrays = read_state_dict(path)
    expected = module.state_dict()
    assert sorted(arrays) == sorted(expected)
    for name, tensor in expected.items():
        want = tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
        np.testing.assert_array_equal(arrays[name], want, err_msg=name)
        assert arrays[name].dtype == want.dtype, name


def test_clip_shaped_torchscript_archive_loads_through_from_preset(tmp_path):
    source = keras_clip.CLIP(tiny_config("vit"))
    state_dict = state_dict_from_model(source)
    root = torch.nn.Module()
    for name, array in state_dict.items():  # OpenAI's archives: fp16 parameters in a tree
        *parents, leaf = name.split(".")
        owner = root
        for part in parents:
            if not hasattr(owner, part):
                owner.add_module(part, torch.nn.Module())
            owner = getattr(owner, part)
        owner.register_parameter(leaf, torch.nn.Parameter(torch.tensor(array).half()))
    path = str(tmp_path / "ViT-tiny.pt")
    torch.jit.save(torch.jit.script(root), path)
    loaded = state_dict_from_model(keras_clip.from_preset(path))
    for name, array in state_dict.items():
        np.testing.assert_array_equal(loaded[name], array.astype("float16").astype("float32"))


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_code_in_a_torchscript_archive_never_runs(tmp_path, loader):
    marker, victim = tmp_path / "created.bin", tmp_path / "victim.txt"
    path = malicious_archive(tmp_path, marker, victim)
    victim.write_bytes(b"hello world")
    torch.jit.load(str(path))  # the attack is real: torch's loader runs the edited code
    assert marker.exists() and victim.read_bytes() == b"XXXXo world"
    marker.unlink()
    victim.write_bytes(b"hello world")
    with pytest.raises(ValueError, match=r"(evil\.pt|pytorch_model\.bin): .*Stateful stores its state through"):
        LOADERS[loader](path, tmp_path)
    assert not marker.exists()
    assert victim.read_bytes() == b"hello world"


class SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_foreign_global_in_data_pkl_is_refused_by_name(tmp_path, loader):
    genuine, path = tmp_path / "genuine.pt", tmp_path / "evil.pt"
    torch.jit.save(torch.jit.script(Block()), str(genuine))
    marker = tmp_path / "created"
    payload = pickle.dumps(SystemCall(f"touch {marker}"), protocol=2)
    rewrite(genuine, path, lambda name, data: payload if name.endswith("/data.pkl") else data)
    with pytest.raises(ValueError, match=r"(evil\.pt|pytorch_model\.bin): refusing the global (posix|os)\.system"):
        LOADERS[loader](path, tmp_path)
    assert not marker.exists()


def test_tensor_reading_past_its_storage_is_refused(tmp_path):
    module = torch.nn.Module()
    module.register_buffer("weight", torch.arange(4.0))
    genuine, path = tmp_path / "genuine.pt", tmp_path / "strided.pt"
    torch.jit.save(torch.jit.script(module), str(genuine))
    size_and_stride = b"(K\x04t(K\x01t"  # size (4,), stride (1,) in data.pkl

    def edit(name, data):
        if name.endswith("/data.pkl"):
            assert data.count(size_and_stride) == 1
            return data.replace(size_and_stride, b"(K\x04t(K\xc8t")  # stride 200
        return data

    rewrite(genuine, path, edit)
    assert read_state_dict(str(genuine))["weight"].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"strided\.pt: .*reads past its storage of 4 elements"):
        read_state_dict(str(path))


def test_truncated_torchscript_archive_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.pt"
    torch.jit.save(torch.jit.script(Block()), str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.pt"):
        read_state_dict(str(path))


def write_safetensors(path, arrays):
    from safetensors.numpy import save_file

    save_file(arrays, str(path))


def write_bin(path, arrays):
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, str(path))


def write_torchscript(path, arrays):
    module = torch.nn.Module()
    for name, array in arrays.items():
        module.register_parameter(name, torch.nn.Parameter(torch.from_numpy(array)))
    torch.jit.save(torch.jit.script(module), str(path))


WRITERS = {".safetensors": write_safetensors, ".bin": write_bin, ".pt": write_torchscript}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_non_finite_weights_are_refused_by_name(tmp_path, suffix, bad):
    proj = np.ones((3, 2), "float16")
    proj[0, 1] = proj[2, 0] = bad
    arrays = {"logit_scale": np.array(4.6, "float32"), "proj": proj}
    path = tmp_path / f"x{suffix}"
    WRITERS[suffix](path, arrays)
    with pytest.raises(
        ValueError, match=rf"x\{suffix}: tensor 'proj' holds 2 NaN/inf values; refusing"
    ):
        read_state_dict(str(path))


def test_finite_check_passes_integers_and_finite_floats():
    check_finite({"ids": np.array([1, 2]), "w": np.zeros((2, 2), "float16")}, "x")
    with pytest.raises(ValueError, match="x: tensor 'b' holds 1 NaN/inf"):
        check_finite({"a": np.zeros(2), "b": np.array([np.nan, 0.0]), "c": [np.inf]}, "x")
