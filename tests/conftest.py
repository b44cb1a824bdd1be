"""Shared fixtures: tiny configs of both image tower families."""

import keras
import pytest

from keras_clip.config import CLIPConfig

if keras.backend.backend() == "jax":
    import jax

    # Eager JAX compiles every op once per shape; for tiny test models the XLA
    # optimisation passes cost far more than they save (model builds ~3x faster).
    jax.config.update("jax_disable_most_optimizations", True)

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
