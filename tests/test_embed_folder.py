"""`keras_clip.inference.embed_folder` and `keras-clip embed --images`: numbers, resume, skips, CLI."""

import dataclasses
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_clip import ImagePreprocessor, from_preset
from keras_clip.cli import main
from keras_clip.config import PreprocessingConfig
from keras_clip.inference import embed_folder, load_image
from keras_clip.inference.embed_folder import preprocessing_of
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 4
KILL_AFTER = 2  # batches


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny preset folder and an image folder: JPEGs of mixed sizes, a grey PNG,
    an RGBA PNG in a sub-folder and one file that is not an image."""
    from keras_clip import CLIP

    root = tmp_path_factory.mktemp("embed")
    model_dir = str(root / "model")
    # Weights that expect other preprocessing than OpenAI's, as vit_h14_dfn5b's do.
    squash = PreprocessingConfig(mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode="squash")
    CLIP(dataclasses.replace(tiny_config("vit"), preprocessing=squash)).save_to_preset(model_dir)
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(13):
        height, width = rng.integers(24, 120, 2)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i:02d}.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8)).save(images / "grey.png")
    Image.fromarray(rng.integers(0, 256, (64, 40, 4), dtype=np.uint8)).save(images / "sub/rgba.png")
    (images / "broken.jpg").write_bytes(b"this is not a JPEG")
    return {"model_dir": model_dir, "images": str(images), "model": from_preset(model_dir)}


def _reference(model, names):
    """Each file alone through the model's ImagePreprocessor and model.encode_image."""
    pre = ImagePreprocessor.for_model(model)
    return np.concatenate([np.asarray(model.encode_image(pre(Image.open(n)))) for n in names])


@pytest.fixture(scope="module")
def whole(setup, tmp_path_factory):
    """`(output path, result)` of one uninterrupted `embed_folder` run over the image folder."""
    out = str(tmp_path_factory.mktemp("whole") / "emb.npy")
    return out, embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, verbose=False)


def test_output_equals_encode_image_of_image_preprocessor(setup, whole):
    out, result = whole
    with open(out[:-len(".npy")] + ".txt") as file:
        names = file.read().splitlines()
    expected = sorted(f for f in os.listdir(setup["images"]) if f.endswith((".jpg", ".png")))
    expected = sorted(set(expected) - {"broken.jpg"} | {os.path.join("sub", "rgba.png")})
    assert names == [os.path.join(setup["images"], f) for f in expected]
    embeddings = np.load(out)
    assert embeddings.dtype == np.float32 and result.images == len(names) == 15
    np.testing.assert_allclose(embeddings, _reference(setup["model"], names), atol=2e-5)
    assert [name for name, _ in result.skipped] == ["broken.jpg"]
    assert "cannot identify image file" in result.skipped[0][1]
    assert not os.path.exists(out + ".partial")


@pytest.mark.parametrize("name", ["00.jpg", "grey.png", os.path.join("sub", "rgba.png")])
def test_decode_and_preprocess_equal_image_preprocessor(setup, name):
    path = os.path.join(setup["images"], name)
    pixels, _, _ = load_image(path, preprocessing_of(setup["model"]))
    expected = ImagePreprocessor.for_model(setup["model"])(Image.open(path))[0]
    np.testing.assert_array_equal(pixels, expected)


def test_normalize_gives_unit_rows(setup, tmp_path):
    out = str(tmp_path / "emb.npy")
    embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, normalize=True,
                 verbose=False)
    np.testing.assert_allclose(np.linalg.norm(np.load(out), axis=1), 1.0, rtol=1e-5)


KILLED_RUN = """
import os, signal, sys
import tests.conftest  # the test process's backend settings (JAX: fewer XLA passes)
from keras_clip import from_preset
from keras_clip.inference import embed_folder, shards

model_dir, images, out, kill_after, batch = sys.argv[1:]
append = shards.ShardStore.append

def append_then_die(self, *args):
    append(self, *args)
    if len(self.entries) == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)

shards.ShardStore.append = append_then_die
embed_folder(from_preset(model_dir), images, out, batch_size=int(batch), verbose=False)
"""


def test_killed_run_resumes_to_the_same_file(setup, whole, tmp_path):
    out = str(tmp_path / "resumed.npy")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, setup["model_dir"], setup["images"], out,
         str(KILL_AFTER), str(BATCH)], cwd=ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not os.path.exists(out) and os.path.isdir(out + ".partial")

    model = setup["model"]
    encoded = []
    encode = model.encode_image
    model.encode_image = lambda x: encoded.append(len(x)) or encode(x)
    try:
        result = embed_folder(model, setup["images"], out, batch_size=BATCH, verbose=False)
    finally:
        del model.encode_image
    # 16 files; the killed run finished 2 batches of 4 (00-07.jpg), the rest is 2 batches.
    assert result.resumed == KILL_AFTER * BATCH and len(encoded) == 2
    np.testing.assert_array_equal(np.load(out), np.load(whole[0]))
    with open(whole[0][:-len(".npy")] + ".txt") as file:
        assert (tmp_path / "resumed.txt").read_text() == file.read()
    assert [name for name, _ in result.skipped] == ["broken.jpg"]
    assert not os.path.exists(out + ".partial")


def test_resume_refuses_a_run_with_other_settings(setup, tmp_path, monkeypatch):
    from keras_clip.inference import shards

    out = str(tmp_path / "emb.npy")

    def fail(self, *args):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(shards.ShardStore, "finalize", fail)
    with pytest.raises(RuntimeError):
        embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, verbose=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="different normalize; delete it or restart"):
        embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, normalize=True,
                     verbose=False)
    result = embed_folder(setup["model"], setup["images"], out, batch_size=BATCH,
                          normalize=True, verbose=False, restart=True)
    assert result.resumed == 0 and result.images == 15


def test_cli_embeds_a_folder_reports_skips_and_is_quiet(setup, tmp_path, capsys):
    out = str(tmp_path / "emb.npy")
    argv = ["embed", "--model", setup["model_dir"], "--images", setup["images"], "-o", out,
            "--batch-size", str(BATCH)]
    assert main(argv + ["--quiet"]) == 0
    captured = capsys.readouterr()
    assert "wrote 15 embeddings" in captured.out
    assert f"{os.path.join(setup['images'], 'broken.jpg')}: UnidentifiedImageError" in captured.out
    assert "embedding images" not in captured.err
    assert main(argv + ["--restart"]) == 0
    assert "embedding images" in capsys.readouterr().err  # the progress bar


def test_cli_parquet_without_pyarrow_fails_before_any_work(setup, tmp_path, capsys, monkeypatch):
    import keras_clip.commands.embed as embed

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setattr(embed, "load_model", lambda *a: pytest.fail("the model was loaded"))
    out = tmp_path / "emb.parquet"
    assert main(["embed", "--model", setup["model_dir"], "--images", setup["images"],
                 "-o", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "needs pyarrow" in error[0] and str(out) in error[0]
    assert not os.path.exists(str(out) + ".partial")


def test_cli_embed_help_describes_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "resumes where it stopped" in text and "keras-clip embed --model vit_b32 --images" in text
    assert "--random-weights" in text and "instead of downloading its pretrained ones" in text
    assert "items per model call (default: 64)" in text


def test_a_file_name_with_a_line_break_is_refused(tmp_path):
    from keras_clip.inference import list_images

    Image.new("RGB", (8, 8)).save(tmp_path / "two\nlines.jpg")
    with pytest.raises(ValueError, match="holds a line break"):
        list_images(str(tmp_path))


def test_parquet_output_holds_names_and_embeddings(setup, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = str(tmp_path / "emb.parquet")
    embed_folder(setup["model"], setup["images"], out, batch_size=BATCH, verbose=False)
    npy = str(tmp_path / "emb.npy")
    embed_folder(setup["model"], setup["images"], npy, batch_size=BATCH, verbose=False)
    table = pq.read_table(out).to_pydict()
    assert table["name"] == (tmp_path / "emb.txt").read_text().splitlines()
    np.testing.assert_array_equal(np.asarray(table["embedding"], np.float32), np.load(npy))
