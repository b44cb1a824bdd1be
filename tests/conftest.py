"""Shared fixtures: tiny configs of both image tower families, one tiny export per session."""

import json
import os

import keras
import pytest

from keras_clip.config import CLIPConfig

if keras.backend.backend() == "jax":
    import jax

    # Eager JAX compiles every op once per shape; for tiny test models the XLA
    # optimisation passes cost far more than they save (model builds ~3x faster).
    jax.config.update("jax_disable_most_optimizations", True)


def pytest_configure(config):
    # Keras ignores `shuffle=True` on a tf.data pipeline, generator or infinite PyDataset and
    # says so; such fits pass shuffle=False (the pipeline shuffles), so the warning is an error.
    config.addinivalue_line("filterwarnings", "error:`shuffle=True` was passed:UserWarning")


TINY_TEXT = {"width": 64, "layers": 1, "context_length": 77, "vocab_size": 1000}
TINY_VIT = {"type": "vit", "image_size": 32, "width": 64, "layers": 1, "patch_size": 16}
TINY_RESNET = {"type": "resnet", "image_size": 64, "width": 8, "layers": [1, 1, 1, 1]}


def tiny_config(vision="vit", embed_dim=32, **text):
    """A CLIPConfig small enough for unit tests (vision: 'vit' or 'resnet')."""
    vision_config = TINY_VIT if vision == "vit" else TINY_RESNET
    return CLIPConfig.from_dict(
        {
            "name": f"tiny_{vision}",
            "embed_dim": embed_dim,
            "vision": dict(vision_config),
            "text": {**TINY_TEXT, **text},
        }
    )


@pytest.fixture(params=["vit", "resnet"])
def tiny_clip_config(request):
    return tiny_config(request.param)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """`(model, folder, manifest)`: a tiny ViT CLIP exported once per session.

    Every format (ONNX, SavedModels, LiteRT), fp16 and static int8 variants: the
    folder that the export, edge, LiteRT and quantization tests read. Tests that
    change files work on a copy (`tests.edge_folders.copy_folder`); the teardown
    fails if the folder was changed.
    """
    from keras_clip.export import export_towers
    from keras_clip.models import CLIP

    keras.utils.set_random_seed(1)
    model = CLIP(tiny_config("vit", embed_dim=64, vocab_size=49408))
    folder = str(tmp_path_factory.mktemp("tiny_export") / "export")
    manifest = export_towers(model, folder, fp16=True, int8="static")
    yield model, folder, manifest
    _check_unchanged(folder, manifest)


def _check_unchanged(folder, manifest):
    from keras_clip.export.manifest import file_entries

    with open(os.path.join(folder, "manifest.json")) as file:
        assert json.load(file) == json.loads(json.dumps(manifest)), "a test edited the shared manifest"
    present = {os.path.relpath(os.path.join(root, name), folder)
               for root, _, names in os.walk(folder) for name in names}
    assert present == set(manifest["files"]) | {"manifest.json"}, "files added to the shared export"
    assert file_entries(folder, list(manifest["files"])) == manifest["files"], \
        "a test changed a file of the shared tiny export; copy the folder first"
