"""Writes tests/golden/preset_preprocessing.npz: open_clip's eval transform per preset.

For each preset in `PRESETS` the transform is built the way
`open_clip.create_model_and_transforms(name, pretrained=tag)` builds it:
`PreprocessCfg()` defaults merged with `pretrained.get_pretrained_cfg(name, tag)`
(mean, std, interpolation, resize_mode), the size set to the case's, then
`image_transform_v2(cfg, is_train=False)`. It runs on the PIL images of the
tests/preprocessing_cases.py inputs in `CASES`. Each output is a uint8 grid
through `/255` and (x - mean) / std, so the file stores the grid
(`u8_<preset>_<case>`, checked to reproduce the output bit for bit), the
pretrained config's values (`mean_<preset>`, `std_<preset>`,
`resize_mode_<preset>`) and the SHA-256 prefix of each input (`sha_<case>`).
`pretrained_cfgs` (JSON) holds mean, std, resize_mode and interpolation of
every keras_clip preset as open_clip's pretrained.py gives them (the open_clip
name and tag from keras_clip/presets/weights.json; OpenAI's nine by `OPENAI`).

Run in the reference environment; scikit-image may be absent there: point
EXTRA_SITE_PACKAGES at a site-packages folder that has it (appended to sys.path,
so the reference's own packages win):
    EXTRA_SITE_PACKAGES=$(python -c "import skimage,os;print(os.path.dirname(os.path.dirname(skimage.__file__)))") \\
        /work/refenv/bin/python scripts/make_preset_preprocessing_golden.py
"""

import dataclasses
import json
import os
import sys

import numpy as np
import open_clip
import torch
from open_clip import pretrained
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
if os.environ.get("EXTRA_SITE_PACKAGES"):
    sys.path.append(os.environ["EXTRA_SITE_PACKAGES"])
import preprocessing_cases as cases  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "golden", "preset_preprocessing.npz")
# keras_clip preset -> (open_clip model name, pretrained tag): squash + OpenAI mean/std,
# and shortest + mean = std = 0.5.
PRESETS = {
    "vit_h14_dfn5b": ("ViT-H-14-quickgelu", "dfn5b"),
    "vit_l14_laion2b": ("ViT-L-14", "laion2b_s32b_b82k"),
}
WEIGHTS = os.path.join(HERE, "..", "keras_clip", "presets", "weights.json")
OPENAI = {"rn50": "RN50", "rn101": "RN101", "rn50x4": "RN50x4", "rn50x16": "RN50x16",
          "rn50x64": "RN50x64", "vit_b32": "ViT-B-32", "vit_b16": "ViT-B-16",
          "vit_l14": "ViT-L-14", "vit_l14_336": "ViT-L-14-336"}
CASES = ("coffee_400x600", "chelsea_up_200x300", "camera_gray_2d", "logo_rgba",
         "chelsea_alpha_gradient", "coffee_tiny_17x23", "chelsea_tall_300x80",
         "ihc_odd_333x511", "astronaut_tall_512x150")


def to_pil(image):
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return Image.fromarray(image)


def recover_uint8(reference, mean, std):
    """The uint8 grid behind a normalised (3, S, S) output; asserts exactness."""
    mean, std = (torch.tensor(v, dtype=torch.float32)[:, None, None] for v in (mean, std))
    grid = torch.round((reference * std + mean) * 255.0).clamp(0, 255).to(torch.uint8)
    again = (grid.float().div(255) - mean) / std
    assert torch.equal(again, reference), float((again - reference).abs().max())
    return grid.permute(1, 2, 0).numpy()  # (S, S, 3)


def pretrained_cfgs():
    """`{preset: {mean, std, resize_mode, interpolation}}` from open_clip's pretrained.py."""
    with open(WEIGHTS, encoding="utf-8") as file:
        sources = json.load(file)
    facts = {}
    for preset, source in sources.items():
        name, tag = source["open_clip"] or (OPENAI[preset], "openai")
        config = pretrained.get_pretrained_cfg(name, tag)
        assert config, (preset, name, tag)
        facts[preset] = {key: config[key] for key in ("mean", "std", "resize_mode", "interpolation")}
    return facts


def main():
    out = {"pretrained_cfgs": np.array(json.dumps(pretrained_cfgs(), sort_keys=True))}
    for preset, (name, tag) in PRESETS.items():
        config = merge_preprocess_dict(dataclasses.asdict(PreprocessCfg()),
                                       pretrained.get_pretrained_cfg(name, tag))
        out[f"mean_{preset}"] = np.array(config["mean"], np.float64)
        out[f"std_{preset}"] = np.array(config["std"], np.float64)
        out[f"resize_mode_{preset}"] = np.array(config["resize_mode"])
        out[f"interpolation_{preset}"] = np.array(config["interpolation"])
        for case in CASES:
            image = cases.load(case)
            size = cases.CASES[case][1]
            transform = image_transform_v2(PreprocessCfg(**{**config, "size": size}),
                                           is_train=False)
            result = transform(to_pil(image))
            out[f"u8_{preset}_{case}"] = recover_uint8(result, config["mean"], config["std"])
            out[f"sha_{case}"] = np.array(cases.digest(image))
        print(f"{preset}: {config['resize_mode']}, mean {config['mean']}, {len(CASES)} cases")
    out["reference"] = np.array(f"open_clip {open_clip.__version__}, pillow {Image.__version__}")
    np.savez_compressed(OUT, **out)
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
