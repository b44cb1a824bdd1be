"""Regenerates tests/golden/preprocessing.npz from open_clip's PIL transforms.

References:
- eval: `open_clip.image_transform(size, is_train=False)` applied to the PIL
  image (mode L, RGB or RGBA, as `Image.fromarray` builds it);
- training crop: torchvision `F.resized_crop(img, top, left, h, w, [S, S],
  BICUBIC)` — what `RandomResizedCrop` does once its box is drawn — then
  the same convert / ToTensor / Normalize.

Every reference output is a uint8 pixel grid run through `/255` and mean/std,
so the file stores that grid (`u8_<case>`, recovered from the reference output
and checked to reproduce it bit for bit) plus the reference's float sum and
first 64 values, and the SHA-256 prefix of each input. Inputs come from
tests/preprocessing_cases.py.

Run in the reference environment (scikit-learn may be absent there: point
SKLEARN_IMAGES_DIR at a scikit-learn's datasets/images folder):
    SKLEARN_IMAGES_DIR=$(python -c "import sklearn,os;print(os.path.dirname(sklearn.__file__)+'/datasets/images')") \\
        /work/refenv/bin/python scripts/make_preprocessing_golden.py
"""

import os
import sys

import numpy as np
import open_clip
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import preprocessing_cases as cases  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "golden", "preprocessing.npz")
MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN, dtype=torch.float32)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD, dtype=torch.float32)


def to_pil(image):
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return Image.fromarray(image)


def recover_uint8(reference):
    """The uint8 grid behind a normalised (3, S, S) output; asserts exactness."""
    pixels = (reference * STD[:, None, None] + MEAN[:, None, None]) * 255.0
    grid = torch.round(pixels).clamp(0, 255).to(torch.uint8)
    again = (grid.float().div(255) - MEAN[:, None, None]) / STD[:, None, None]
    assert torch.equal(again, reference), float((again - reference).abs().max())
    return grid.permute(1, 2, 0).numpy()  # (S, S, 3)


def store(out, key, reference, digest):
    out[f"u8_{key}"] = recover_uint8(reference)
    hwc = reference.permute(1, 2, 0).numpy()
    out[f"sum_{key}"] = np.float64(hwc.astype(np.float64).sum())
    out[f"head_{key}"] = hwc.reshape(-1)[:64].copy()
    out[f"sha_{key}"] = np.array(digest)


def main():
    out = {}
    for name, (_, size) in cases.CASES.items():
        image = cases.load(name)
        transform = open_clip.image_transform(size, is_train=False)
        store(out, name, transform(to_pil(image)), cases.digest(image))
        print(f"{name}: {image.shape} -> {size}")
    tail = open_clip.image_transform(8, is_train=False).transforms[-3:]  # convert, tensor, normalize
    for key, (name, (top, left, h, w), size) in cases.CROP_CASES.items():
        image = cases.load(name)
        crop = TF.resized_crop(to_pil(image), top, left, h, w, [size, size], InterpolationMode.BICUBIC)
        for step in tail:
            crop = step(crop)
        store(out, key, crop, cases.digest(image))
        print(f"{key}: box {(top, left, h, w)} of {image.shape} -> {size}")
    out["reference"] = np.array(
        f"open_clip {open_clip.__version__}, torchvision {torchvision.__version__}, "
        f"pillow {Image.__version__}"
    )
    np.savez_compressed(OUT, **out)
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
