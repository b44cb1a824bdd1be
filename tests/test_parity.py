"""Parity with the reference implementations (open_clip and transformers).

The tiny cases compare against golden files in tests/golden/parity, written by
`scripts/make_parity_reference.py tiny` from open_clip / transformers with every
tensor perturbed. The large cases run that script live for each full-size
architecture in the reference environment named by `KERAS_CLIP_REFERENCE_PYTHON`.
"""

import os
import subprocess

import numpy as np
import pytest
from keras import ops

import keras_clip
from keras_clip.presets.download import weight_sources

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "parity")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parity_errors(actual, expected):
    """(min row cosine, max abs difference / reference max magnitude)."""
    actual = np.asarray(actual, "float64")
    expected = np.asarray(expected, "float64")
    cosine = np.sum(actual * expected, -1) / (
        np.linalg.norm(actual, axis=-1) * np.linalg.norm(expected, axis=-1)
    )
    relative = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
    return float(cosine.min()), float(relative)


def assert_parity(model, reference):
    image_embeddings = ops.convert_to_numpy(model.encode_image(reference["images"]))
    text_embeddings = ops.convert_to_numpy(model.encode_text(reference["token_ids"]))
    for name, actual in (("image", image_embeddings), ("text", text_embeddings)):
        cosine, relative = parity_errors(actual, reference[f"{name}_embeddings"])
        print(f"{name}: min cosine {cosine:.8f}, max abs diff / magnitude {relative:.2e}")
        assert cosine >= 0.99999, f"{name} tower cosine {cosine}"
        assert relative <= 1e-4, f"{name} tower max abs diff / magnitude {relative}"
    scale = float(ops.convert_to_numpy(model.logit_scale))
    np.testing.assert_allclose(scale, reference["logit_scale"], rtol=1e-6)


@pytest.mark.parametrize(
    "case, checkpoint",
    [
        ("tiny_vit", "tiny_vit.safetensors"),
        ("tiny_resnet", "tiny_resnet.bin"),
        ("hf_vit", "hf_vit"),
    ],
)
def test_tiny_parity_with_reference(case, checkpoint):
    if checkpoint.endswith(".bin"):
        pytest.importorskip("torch", reason="reading .bin checkpoints needs PyTorch")
    reference = np.load(os.path.join(GOLDEN, f"{case}.npz"))
    model = keras_clip.from_preset(os.path.join(GOLDEN, checkpoint))
    assert_parity(model, reference)


def test_tiny_parity_survives_save_to_preset(tmp_path):
    reference = np.load(os.path.join(GOLDEN, "tiny_vit.npz"))
    keras_clip.from_preset(os.path.join(GOLDEN, "tiny_vit.safetensors")).save_to_preset(
        tmp_path / "preset"
    )
    assert_parity(keras_clip.from_preset(str(tmp_path / "preset")), reference)


def test_inferred_architecture_matches_reference_config():
    model = keras_clip.from_preset(os.path.join(GOLDEN, "tiny_resnet.bin"))
    vision = model.config.vision
    assert (vision.type, vision.image_size, vision.width, vision.layers) == (
        "resnet", 64, 8, (1, 2, 1, 1)
    )
    assert vision.heads == 4 and model.config.embed_dim == 32
    assert (model.config.text.vocab_size, model.config.text.layers) == (1000, 2)


REFERENCE_PYTHON = os.environ.get("KERAS_CLIP_REFERENCE_PYTHON")


@pytest.mark.large
@pytest.mark.parametrize("preset", [n for n, s in weight_sources().items()
                                    if s["family"] == "OpenAI"])  # open ones: test_presets_open
def test_full_size_parity_with_open_clip(preset, tmp_path):
    if not REFERENCE_PYTHON:
        pytest.skip("set KERAS_CLIP_REFERENCE_PYTHON to a python with open_clip installed")
    script = os.path.join(ROOT, "scripts", "make_parity_reference.py")
    subprocess.run(
        [REFERENCE_PYTHON, script, preset, "--out", str(tmp_path)], check=True, cwd=ROOT
    )
    reference = np.load(tmp_path / f"{preset}.npz")
    model = keras_clip.from_preset(str(tmp_path / f"{preset}.safetensors"))
    assert model.config.to_dict()["vision"] == keras_clip.presets.preset_config(
        preset
    ).to_dict()["vision"]
    assert_parity(model, reference)
