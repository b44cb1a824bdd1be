"""Calibration inputs for static int8 quantization of an exported ONNX tower.

Static quantization fixes each activation's int8 range ahead of time from the
ranges seen on calibration inputs. The tower's own metadata (written by
`export_onnx`: `tower`, `image_size`, `mean`, `std`, `resize_mode`,
`context_length`, `config`) says what to feed it:

- image tower: the conformance images (`conformance.conformance_images`) and
  28 more generated the same way with other seeds (32 in all), or up to
  `MAX_FOLDER_IMAGES` image files of a user's folder (sorted by name),
  preprocessed PIL-exactly (`preprocess_numpy`). Real photos of the target
  domain give the better ranges.
- text tower: the conformance captions, "a photo of a {label}." for `LABELS`
  and `PROMPT_COUNT` zero-shot prompts (OpenAI's 80 ImageNet templates over
  every other ImageNet class name), tokenized with `CLIPTokenizer`. The
  prompts are there for their vocabulary: a word the calibration set never
  shows can push an activation past its calibrated range (on the demo model,
  the 32 captions alone gave cosine 0.971 to fp32 on its prompts; with the
  prompts, 0.997). A test model whose vocabulary cannot hold CLIP's ids gets
  the ids folded into it (end token kept highest).

Example:
    >>> from keras_clip.export.calibration import calibration_batches
    >>> batches = calibration_batches("image_encoder.onnx")  # doctest: +SKIP
    >>> batches[0]["images"].shape  # doctest: +SKIP
    (8, 224, 224, 3)
"""

import json
import os

import numpy as np

from keras_clip.export.conformance import CAPTIONS, conformance_images
from keras_clip.preprocessing.eager import preprocess_numpy
from keras_clip.tokenizer import CLIPTokenizer

BATCH = 8
GENERATED_SEEDS = range(8)  # 4 images per seed
MAX_FOLDER_IMAGES = 256
PROMPT_COUNT = 480
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LABELS = ("cat", "dog", "car", "bird", "person", "house", "tree", "boat", "flower", "bicycle",
          "horse", "airplane", "mountain", "beach", "city street", "plate of food", "laptop",
          "chair", "clock", "train", "sunset", "handwritten note")


def tower_facts(path):
    """The export metadata of the ONNX tower at `path` (`tower`, `image_size`, …), decoded."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    facts = {p.key: p.value for p in model.metadata_props}
    if facts.get("tower") not in ("image_encoder", "text_encoder"):
        raise ValueError(f"{path} has no keras_clip tower metadata (`tower`); static int8 needs "
                         "a tower written by keras_clip's export_onnx.")
    return facts


def folder_images(folder, limit=MAX_FOLDER_IMAGES):
    """Up to `limit` image file paths of `folder`, sorted by name; OSError / ValueError if none."""
    if not os.path.isdir(folder):
        raise OSError(f"--calibration-images {folder!r} is not a folder; expected a folder of "
                      f"image files ({', '.join(IMAGE_EXTENSIONS)}).")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError(f"--calibration-images {folder!r} holds no image files; expected "
                         f"{', '.join(IMAGE_EXTENSIONS)}.")
    return [os.path.join(folder, n) for n in names[:limit]]


def calibration_pixels(facts, folder=None):
    """Preprocessed float32 `(N, S, S, 3)` calibration images for an image tower's `facts`."""
    if folder is not None:
        images = folder_images(folder)
    else:
        images = [image for seed in GENERATED_SEEDS for image in conformance_images(seed)]
    return preprocess_numpy(images, int(facts["image_size"]), json.loads(facts["mean"]),
                            json.loads(facts["std"]), facts["resize_mode"])


def calibration_texts():
    """The text tower's calibration captions (see the module docstring).

    Example:
        >>> calibration_texts()[-1]
        'a tattoo of the hay.'
    """
    from keras_clip.evaluation.templates import get_templates, imagenet_class_names

    templates, names = get_templates("openai_imagenet"), imagenet_class_names()
    prompts = [templates[i % len(templates)].format(names[(2 * i) % len(names)])
               for i in range(PROMPT_COUNT)]
    return list(CAPTIONS) + [f"a photo of a {label}." for label in LABELS] + prompts


def calibration_token_ids(facts):
    """int32 `(N, L)` calibration token ids for a text tower's `facts`."""
    tokenizer = CLIPTokenizer(context_length=int(facts["context_length"]))
    ids = tokenizer(calibration_texts())
    ids = np.asarray(ids).astype(np.int32)
    vocab_size = int(json.loads(facts["config"])["text"]["vocab_size"])
    if vocab_size < tokenizer.vocab_size:  # a test model: fold, the end token stays highest
        end = ids == ids.max(axis=1, keepdims=True)
        ids = np.where(end, vocab_size - 1, ids % (vocab_size - 1)).astype(np.int32)
    return ids


def calibration_batches(path, images=None):
    """`[{input name: batch}]` to calibrate the tower at `path` (batches of `BATCH`).

    Args:
        path: an ONNX tower written by keras_clip's export.
        images: a folder of calibration images for the image tower; None:
            generated ones.
    """
    facts = tower_facts(path)
    if facts["tower"] == "image_encoder":
        name, values = "images", calibration_pixels(facts, images)
    else:
        name, values = "token_ids", calibration_token_ids(facts)
    return [{name: values[i:i + BATCH]} for i in range(0, len(values), BATCH)]
