import json

import pytest

import keras_clip
from keras_clip.config import CLIPConfig, ResNetConfig, TextConfig, ViTConfig
from keras_clip.presets import preset_config

# Facts from DESIGN.md's table of the nine OpenAI architectures.
EXPECTED = {
    "rn50": ("resnet", 224, 64, [3, 4, 6, 3], None, 1024, 512, 8),
    "rn101": ("resnet", 224, 64, [3, 4, 23, 3], None, 512, 512, 8),
    "rn50x4": ("resnet", 288, 80, [4, 6, 10, 6], None, 640, 640, 10),
    "rn50x16": ("resnet", 384, 96, [6, 8, 18, 8], None, 768, 768, 12),
    "rn50x64": ("resnet", 448, 128, [3, 15, 36, 10], None, 1024, 1024, 16),
    "vit_b32": ("vit", 224, 768, 12, 32, 512, 512, 8),
    "vit_b16": ("vit", 224, 768, 12, 16, 512, 512, 8),
    "vit_l14": ("vit", 224, 1024, 24, 14, 768, 768, 12),
    "vit_l14_336": ("vit", 336, 1024, 24, 14, 768, 768, 12),
}


def test_list_presets_has_the_nine_openai_models():
    assert set(EXPECTED) <= set(keras_clip.list_presets())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_configs_match_the_published_architectures(name):
    kind, size, width, layers, patch, embed, text_width, text_heads = EXPECTED[name]
    config = preset_config(name)
    vision = config.vision
    assert (vision.type, vision.image_size, vision.width, config.embed_dim) == (
        kind, size, width, embed
    )
    if kind == "vit":
        assert (vision.layers, vision.patch_size, vision.heads) == (layers, patch, width // 64)
    else:
        assert list(vision.layers) == layers and vision.heads == width * 32 // 64
    text = config.text
    assert (text.width, text.heads, text.layers) == (text_width, text_heads, 12)
    assert (text.context_length, text.vocab_size) == (77, 49408)


# Facts from open_clip 3.3.0's model_configs/*.json (head_width, mlp_ratio) and
# pretrained.py (quick_gelu): (image size, width, layers, patch, heads, MLP,
# text width, text heads, text layers, embed, activation).
_B32 = (224, 768, 12, 32, 12, 3072, 512, 8, 12, 512)
_B16 = (224, 768, 12, 16, 12, 3072, 512, 8, 12, 512)
_L14 = (224, 1024, 24, 14, 16, 4096, 768, 12, 12, 768)
_H14 = (224, 1280, 32, 14, 16, 5120, 1024, 16, 24, 1024)  # head width 80
OPEN_EXPECTED = {
    "vit_b32_laion2b": _B32 + ("gelu",),
    "vit_b32_datacomp_xl": _B32 + ("gelu",),
    "vit_b32_metaclip_fullcc": _B32 + ("quick_gelu",),
    "vit_b16_laion2b": _B16 + ("gelu",),
    "vit_b16_datacomp_xl": _B16 + ("gelu",),
    "vit_b16_dfn2b": _B16 + ("quick_gelu",),
    "vit_l14_laion2b": _L14 + ("gelu",),
    "vit_l14_datacomp_xl": _L14 + ("gelu",),
    "vit_l14_dfn2b": _L14 + ("quick_gelu",),
    "vit_l14_metaclip_fullcc": _L14 + ("quick_gelu",),
    "vit_h14_laion2b": _H14 + ("gelu",),
    "vit_h14_dfn5b": _H14 + ("quick_gelu",),
    "vit_h14_metaclip_fullcc": _H14 + ("quick_gelu",),
    "vit_h14_378_dfn5b": (378,) + _H14[1:] + ("quick_gelu",),
    # ViT-g: head width 88, mlp_ratio 4.3637 -> int(1408 * 4.3637) = 6144
    "vit_g14_laion2b": (224, 1408, 40, 14, 16, 6144, 1024, 16, 24, 1024, "gelu"),
    # ViT-bigG: head width 104, mlp_ratio 4.9231 -> int(1664 * 4.9231) = 8192
    "vit_bigg14_laion2b": (224, 1664, 48, 14, 16, 8192, 1280, 20, 32, 1280, "gelu"),
}


@pytest.mark.parametrize("name", sorted(OPEN_EXPECTED))
def test_open_preset_configs_match_open_clip(name):
    size, width, layers, patch, heads, mlp, t_width, t_heads, t_layers, embed, act = (
        OPEN_EXPECTED[name])
    config = preset_config(name)
    vision, text = config.vision, config.text
    assert (vision.image_size, vision.width, vision.layers, vision.patch_size) == (
        size, width, layers, patch)
    assert (vision.heads, vision.mlp_dim, vision.activation) == (heads, mlp, act)
    assert (text.width, text.heads, text.layers, text.mlp_dim, text.activation) == (
        t_width, t_heads, t_layers, 4 * t_width, act)
    assert (config.embed_dim, text.context_length, text.vocab_size) == (embed, 77, 49408)


def test_config_round_trips_through_json(tmp_path):
    config = preset_config("rn50x4")
    config.to_json(tmp_path / "config.json")
    assert CLIPConfig.from_json(tmp_path / "config.json") == config
    assert json.loads((tmp_path / "config.json").read_text())["vision"]["type"] == "resnet"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ViTConfig(image_size=224, width=768, layers=12, patch_size=30), "multiple"),
        (lambda: ViTConfig(image_size=224, width=0, layers=12, patch_size=32), "positive"),
        (lambda: ViTConfig(image_size=224, width=100, layers=1, patch_size=32, heads=3), "divisible"),
        (lambda: ResNetConfig(image_size=224, width=64, layers=[3, 4, 6]), "4 stage"),
        (lambda: ResNetConfig(image_size=200, width=64, layers=[1, 1, 1, 1]), "multiple of 32"),
        (lambda: TextConfig(width=512, layers=12, activation="relu"), "activation"),
        (
            lambda: CLIPConfig.from_dict(
                {"embed_dim": 8, "vision": {"type": "swin"}, "text": {"width": 64, "layers": 1}}
            ),
            "'vit' or 'resnet'",
        ),
        (
            lambda: CLIPConfig.from_dict(
                {
                    "embed_dim": 8,
                    "vision": {"type": "vit", "image_size": 32, "width": 64, "layers": 1,
                               "patch_size": 16, "depth": 3},
                    "text": {"width": 64, "layers": 1},
                }
            ),
            "Unknown keys ['depth']",
        ),
    ],
)
def test_invalid_configs_say_what_is_wrong(build, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()
