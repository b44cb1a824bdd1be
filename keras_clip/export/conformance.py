"""`conformance.npz`: fixed inputs and their Keras embeddings, stored in an export folder.

A runtime on the target device (`clip-edge verify FOLDER`) feeds the same
captions and raw images through its tokenizer, preprocessing and towers and
compares with what Keras computed here: the folder proves itself on the device.

Keys: `captions` (str), `token_ids` int32 `(N, L)` from `CLIPTokenizer`,
`text_embeddings` float32 `(N, D)`; `image_count`, `image_0` … uint8
`(h, w, 3)` raw images of different sizes, `image_embeddings` float32
`(M, D)` of the images preprocessed by `ImagePreprocessor`. A model whose
vocabulary cannot hold CLIP's token ids (tiny test models) stores no text part.

Example:
    >>> from keras_clip.export.conformance import write_conformance
    >>> towers = write_conformance(model, "vit_b32_export/conformance.npz")  # doctest: +SKIP
    >>> towers  # doctest: +SKIP
    ('image_encoder', 'text_encoder')
"""

import numpy as np

from keras_clip.preprocessing import ImagePreprocessor
from keras_clip.tokenizer import CLIPTokenizer

CONFORMANCE_FILE = "conformance.npz"
# Cosine to the stored Keras embeddings that a runtime must reach, per precision.
THRESHOLDS = {
    "fp32": {"image": 0.999, "text": 0.9999},
    "fp16": {"image": 0.999, "text": 0.999},
    "int8": {"image": 0.99, "text": 0.99},
}
TOKEN_AGREEMENT = 1.0  # fraction of the captions whose ids must equal CLIPTokenizer's
CAPTIONS = (
    "a photo of a cat",
    "A diagram of the Transformer architecture, drawn by hand.",
    "Café au lait on a wooden table",
    "\u201cthe quick brown fox\u201d jumps over the lazy dog",
    "two dogs &amp; a frisbee at the beach",
    "straße in münchen bei nacht",
    "東京の夜景",
    "   extra   spaces\tand\na new line   ",
    "",
    "a very long caption " + "that keeps going " * 30,
)
IMAGE_SIZES = ((37, 53), (64, 64), (90, 40), (300, 17))


def conformance_images(seed=0):
    """Smooth uint8 RGB images of `IMAGE_SIZES` (gradients, stripes and a little noise)."""
    rng = np.random.default_rng(seed)
    images = []
    for index, (height, width) in enumerate(IMAGE_SIZES):
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, 3)
        channels = [
            127.5 * (1 + np.sin(x / (5 + 3 * c + index) + y / (9 - c) + phase[c])) for c in range(3)
        ]
        image = np.stack(channels, axis=-1) + rng.normal(0, 4, (height, width, 3))
        images.append(np.clip(np.round(image), 0, 255).astype(np.uint8))
    return images


def write_conformance(model, path, towers=("image_encoder", "text_encoder")):
    """Writes `path` for `model`'s `towers`; returns the towers it covers.

    The text part needs a vocabulary that holds CLIP's token ids.
    """
    images = conformance_images()
    tokenizer = CLIPTokenizer(context_length=model.context_length)
    token_ids = tokenizer(list(CAPTIONS))
    values = {"captions": np.array(CAPTIONS), "token_ids": token_ids}
    covered = ()
    if "image_encoder" in towers:
        preprocess = ImagePreprocessor.for_model(model)
        pixels = np.concatenate([preprocess(image) for image in images])
        values.update({f"image_{index}": image for index, image in enumerate(images)})
        values["image_count"] = np.int64(len(images))
        values["image_embeddings"] = np.asarray(model.encode_image(pixels), np.float32)
        covered += ("image_encoder",)
    if "text_encoder" in towers and tokenizer.vocab_size <= model.config.text.vocab_size:
        values["text_embeddings"] = np.asarray(model.encode_text(token_ids), np.float32)
        covered += ("text_encoder",)
    np.savez_compressed(path, **values)
    return covered
