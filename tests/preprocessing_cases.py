"""Test images for preprocessing parity, shared by the test and the golden script.

Real photographs shipped with scikit-image (PNG/JPEG files inside the package)
and scikit-learn (`china.jpg`, `flower.jpg`), plus exact numpy crops,
subsamplings and an alpha channel of them, so sizes, aspect ratios, upscaling,
grayscale and RGBA are covered. Only lossless numpy operations derive new
images, so every environment rebuilds identical inputs (JPEG decodes are
checked against a stored SHA-256 by the test).
"""

import hashlib
import os

import numpy as np


def _skimage(name):
    import skimage.data

    return getattr(skimage.data, name)()


def _sklearn(filename):
    """Decodes a scikit-learn sample image with PIL (scikit-learn itself optional)."""
    from PIL import Image

    folder = os.environ.get("SKLEARN_IMAGES_DIR")
    if folder is None:
        import sklearn

        folder = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images")
    return np.asarray(Image.open(os.path.join(folder, filename)).convert("RGB"))


def _with_alpha(rgb):
    h, w = rgb.shape[:2]
    alpha = np.repeat((np.arange(h) * 255 // max(h - 1, 1))[:, None], w, axis=1).astype(np.uint8)
    return np.concatenate([rgb, alpha[:, :, None]], axis=-1)


# name -> (builder, image_size)
CASES = {
    "coffee_400x600": (lambda: _skimage("coffee"), 224),
    "astronaut_512": (lambda: _skimage("astronaut"), 224),
    "chelsea_up_200x300": (lambda: _skimage("chelsea")[50:250, 60:360], 224),
    "camera_gray_2d": (lambda: _skimage("camera"), 96),
    "coins_gray_303x384": (lambda: _skimage("coins")[:, :, None], 128),
    "logo_rgba": (lambda: _skimage("logo"), 64),
    "chelsea_alpha_gradient": (lambda: _with_alpha(_skimage("chelsea")), 112),
    "rocket_jpeg": (lambda: _skimage("rocket"), 160),
    "hubble_big_downscale": (lambda: _skimage("hubble_deep_field"), 48),
    "china_sklearn": (lambda: _sklearn("china.jpg"), 160),
    "flower_sklearn_crop": (lambda: _sklearn("flower.jpg")[40:400, 100:333], 144),
    "astronaut_wide_crop_up": (lambda: _skimage("astronaut")[50:150, 100:400], 160),
    "coffee_tiny_17x23": (lambda: _skimage("coffee")[200:217, 300:323], 48),
    "chelsea_tall_300x80": (lambda: _skimage("chelsea")[:, 100:180], 64),
    "astronaut_subsampled": (lambda: _skimage("astronaut")[::3, ::2], 120),
    "ihc_odd_333x511": (lambda: _skimage("immunohistochemistry")[:333, :511], 77),
    "moon_3x5": (lambda: _skimage("moon")[200:203, 300:305], 32),
    "astronaut_tall_512x150": (lambda: _skimage("astronaut")[:, 150:300], 96),
    "coffee_transposed": (lambda: _skimage("coffee").transpose(1, 0, 2)[::2, ::2], 100),
}

# Boxes (top, left, height, width) for the random-resized-crop parity cases.
CROP_CASES = {
    "coffee_box": ("coffee_400x600", (13, 40, 381, 520), 96),
    "chelsea_box": ("chelsea_alpha_gradient", (0, 7, 190, 300), 128),
    "astronaut_box": ("astronaut_512", (30, 2, 480, 500), 64),
    "tall_box": ("astronaut_512", (0, 100, 500, 200), 64),
    "tiny_box": ("coffee_tiny_17x23", (1, 2, 16, 20), 40),
}


def load(name):
    image = np.ascontiguousarray(CASES[name][0]())
    return image


def digest(image):
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]
