"""`embed_folder(..., precision=)` and `keras-clip embed --precision`: bf16 numbers, resume, errors."""

import importlib
import warnings

import numpy as np
import pytest
from PIL import Image

from keras_clip import CLIP
from keras_clip.cli import main
from keras_clip.inference import embed_folder
from keras_clip.inference import precision as precision_module
from keras_clip.inference.precision import for_precision, precision_of
from tests.conftest import tiny_config

BATCH = 4
embed_module = importlib.import_module("keras_clip.inference.embed_folder")  # the module


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny ViT CLIP (saved as a preset too) and 10 JPEGs of mixed sizes."""
    root = tmp_path_factory.mktemp("precision")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        height, width = rng.integers(24, 100, 2)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            images / f"{i:02d}.jpg", quality=90)
    model = CLIP(tiny_config("vit"))
    model.save_to_preset(str(root / "model"))
    return {"model": model, "images": str(images), "model_dir": str(root / "model")}


@pytest.fixture(scope="module")
def embedded(setup, tmp_path_factory):
    """The folder embedded once in fp32 and once in bf16 (float32 arrays)."""
    root = tmp_path_factory.mktemp("embedded")
    arrays = {}
    for precision in ("fp32", "bf16"):
        out = str(root / f"{precision}.npy")
        result = embed_folder(setup["model"], setup["images"], out, batch_size=BATCH,
                              verbose=False, precision=precision)
        assert result.images == 10
        arrays[precision] = np.load(out)
    return arrays


def _cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_bf16_embeddings_are_close_to_fp32_and_really_bf16(setup, embedded):
    a, b = embedded["fp32"], embedded["bf16"]
    assert a.shape == b.shape and b.dtype == np.float32
    cosines = _cosines(a, b)
    assert cosines.min() > 0.999, cosines  # ViT-B/32 on the benchmark's JPEGs: see results
    assert not np.array_equal(a, b)  # computed in bf16, not silently in fp32
    assert precision_of(setup["model"]) == "fp32"  # the caller's model is left as it was


def test_a_bf16_model_embeds_in_fp32_when_asked(setup, embedded, tmp_path):
    half = CLIP(tiny_config("vit"), dtype="bfloat16")
    half.set_weights(setup["model"].get_weights())
    rounded = CLIP(tiny_config("vit"))  # fp32, holding the bf16-rounded weights
    rounded.set_weights([np.asarray(w, np.float32) for w in half.get_weights()])
    out, expected = str(tmp_path / "x.npy"), str(tmp_path / "expected.npy")
    embed_folder(half, setup["images"], out, batch_size=BATCH, verbose=False, precision="fp32")
    embed_folder(rounded, setup["images"], expected, batch_size=BATCH, verbose=False)
    assert precision_of(half) == "bf16"  # the caller's model is left as it was
    np.testing.assert_allclose(np.load(out), np.load(expected), rtol=1e-5, atol=1e-6)
    assert _cosines(np.load(out), embedded["fp32"]).min() > 0.999


def _interrupted_run(setup, out, monkeypatch, precision):
    """Embeds until the second batch, then fails: OUTPUT.partial/ holds one shard."""
    real, calls = embed_module._encode, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(embed_module, "_encode", failing)
    with pytest.raises(KeyboardInterrupt):
        embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, verbose=False,
                     precision=precision)
    monkeypatch.setattr(embed_module, "_encode", real)


def test_resume_needs_the_same_precision(setup, embedded, tmp_path, monkeypatch):
    out = str(tmp_path / "emb.npy")
    _interrupted_run(setup, out, monkeypatch, "bf16")
    with pytest.raises(ValueError, match="different precision;") as error:
        embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, verbose=False,
                     precision="fp32")
    assert len(str(error.value).splitlines()) == 1
    result = embed_folder(setup["model"], setup["images"], out, batch_size=BATCH,
                          verbose=False, precision="bf16")
    assert result.resumed == BATCH and result.images == 10
    np.testing.assert_array_equal(np.load(out), embedded["bf16"])


@pytest.mark.parametrize("bad", ["fp16", "bfloat16", "", 32])
def test_a_bad_precision_is_one_line_value_error_before_any_work(setup, tmp_path, bad):
    out = tmp_path / "emb.npy"
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16; received") as e:
        embed_folder(setup["model"], setup["images"], str(out), precision=bad, verbose=False)
    assert len(str(e.value).splitlines()) == 1
    assert not (tmp_path / "emb.npy.partial").exists()


def test_cli_precision_bf16_and_bad_values(setup, embedded, tmp_path, capsys):
    out = str(tmp_path / "emb.npy")
    argv = ["embed", "--model", setup["model_dir"], "--images", setup["images"], "-o", out,
            "--batch-size", str(BATCH), "--quiet"]
    assert main(argv + ["--precision", "bf16"]) == 0
    np.testing.assert_array_equal(np.load(out), embedded["bf16"])
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--precision", "fp16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    texts = tmp_path / "captions.txt"
    texts.write_text("a cat\n")
    assert main(["embed", "--model", setup["model_dir"], "--texts", str(texts), "-o", out,
                 "--precision", "bf16"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--images only" in error[0]


def test_bf16_on_a_cpu_without_bf16_instructions_warns(setup, monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(precision_module, "_on_accelerator", lambda: False)
    with pytest.warns(UserWarning, match="will be slower than fp32") as record:
        model, name = for_precision(setup["model"], "bf16")
    ours = [w for w in record if "bf16" in str(w.message)]
    assert len(ours) == 1 and len(str(ours[0].message).splitlines()) == 1
    assert name == "bf16" and precision_of(model) == "bf16"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*bf16.*")
        for_precision(setup["model"], "bf16")
