"""`ClipEdge`: CLIP towers exported by keras_clip, run with ONNX Runtime."""

import os

import numpy as np

from clip_edge.manifest import read_manifest
from clip_edge.manifest import verify as verify_sha256
from clip_edge.preprocess import preprocess
from clip_edge.tokenizer import Tokenizer

DEFAULT_TEMPLATES = ("a photo of a {}.",)


def default_providers():
    """CUDA first when this onnxruntime build has it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available] or available


def normalize(x):
    """Rows divided by their L2 norm."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ClipEdge:
    """Loads an export folder (manifest.json + ONNX towers) and runs CLIP with it.

    Args:
        folder: the folder `keras-clip export` wrote.
        providers: onnxruntime providers; default CUDA first when available, then CPU.
        precision: `"fp32"`, `"fp16"` or `"int8"` (that variant must have been exported).
        verify: check each loaded file's SHA-256 against the manifest (default True).

    Example:
        >>> edge = ClipEdge("vit_b32_export")  # doctest: +SKIP
        >>> probs = edge.zero_shot(["cat.jpg"], ["cat", "dog"])  # doctest: +SKIP
        >>> probs.shape  # doctest: +SKIP
        (1, 2)
    """

    def __init__(self, folder, providers=None, precision="fp32", verify=True):
        import onnxruntime as ort

        self.folder = os.fspath(folder)
        self.manifest = read_manifest(self.folder)
        onnx_files = self.manifest.get("onnx", {})
        files = {}
        for tower in ("image_encoder", "text_encoder"):
            variants = onnx_files.get(tower, {})
            if precision not in variants:
                raise ValueError(
                    f"No {precision} {tower} in {self.folder}; the manifest lists "
                    f"{sorted(variants) or 'none'}. Export with --{precision} or pick another."
                )
            files[tower] = variants[precision]
        vocabulary = self.manifest["text"]["vocabulary"]
        if verify:
            verify_files = [files["image_encoder"], files["text_encoder"], vocabulary]
            verify_files += [f + ".data" for f in files.values() if f + ".data" in self.manifest["files"]]
            verify_sha256(self.folder, self.manifest, verify_files)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = list(providers) if providers is not None else default_providers()
        self._image = ort.InferenceSession(
            os.path.join(self.folder, files["image_encoder"]), options, providers=providers
        )
        self._text = ort.InferenceSession(
            os.path.join(self.folder, files["text_encoder"]), options, providers=providers
        )
        self.image_size = int(self.manifest["image"]["size"])
        self.mean = tuple(self.manifest["image"]["mean"])
        self.std = tuple(self.manifest["image"]["std"])
        self.context_length = int(self.manifest["text"]["context_length"])
        self.logit_scale = float(self.manifest["logit_scale"])
        self.tokenizer = Tokenizer(os.path.join(self.folder, vocabulary), self.context_length)

    @property
    def providers(self):
        return self._image.get_providers()

    def preprocess(self, images):
        """Paths / PIL images / uint8 arrays -> float32 `(B, S, S, 3)`."""
        return preprocess(images, self.image_size, self.mean, self.std)

    def encode_pixels(self, pixels, normalized=False):
        """Already preprocessed float32 `(B, S, S, 3)` -> embeddings `(B, D)`."""
        pixels = np.asarray(pixels)
        expected = f"(batch, {self.image_size}, {self.image_size}, 3) float32"
        if pixels.ndim != 4 or pixels.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"Expected preprocessed images {expected}; received shape {pixels.shape}.")
        if pixels.dtype.kind != "f":
            raise ValueError(f"Expected preprocessed images {expected}; received dtype {pixels.dtype}.")
        outputs = self._image.run(None, {"images": pixels.astype(np.float32)})
        return outputs[1] if normalized else outputs[0]

    def encode_images(self, images, normalized=False):
        """Images (paths, PIL images or uint8 HWC arrays) -> embeddings `(B, D)`.

        `normalized=True` returns unit-norm rows; otherwise the projected embeddings
        (as `keras_clip.CLIP.encode_image`).
        """
        return self.encode_pixels(self.preprocess(images), normalized)

    def tokenize(self, texts):
        """Captions -> int32 `(B, 77)` ids (identical to `keras_clip.CLIPTokenizer`)."""
        return self.tokenizer(texts)

    def encode_texts(self, texts, normalized=False):
        """Captions (a str or a list of str) -> embeddings `(B, D)`."""
        outputs = self._text.run(None, {"token_ids": self.tokenize(texts)})
        return outputs[1] if normalized else outputs[0]

    def similarity(self, images, texts):
        """Cosine similarities `(num_images, num_texts)`."""
        return self.encode_images(images, True) @ self.encode_texts(texts, True).T

    def class_embeddings(self, labels, templates=None):
        """One unit vector per label: the renormalised mean over `templates`."""
        if isinstance(labels, str) or not labels:
            raise ValueError(f"`labels` must be a non-empty list of str, received {labels!r:.80}.")
        templates = list(templates or DEFAULT_TEMPLATES)
        for template in templates:
            if not isinstance(template, str) or "{}" not in template:
                raise ValueError(f"Each template must be a str containing '{{}}', received {template!r}.")
        texts = [template.format(label) for label in labels for template in templates]
        embeddings = self.encode_texts(texts, True).reshape(len(labels), len(templates), -1)
        return normalize(embeddings.mean(axis=1))

    def zero_shot(self, images, labels, templates=None):
        """Class probabilities `(num_images, num_labels)`: softmax of scaled cosines."""
        logits = self.logit_scale * self.encode_images(images, True) @ self.class_embeddings(
            labels, templates
        ).T
        logits = logits - logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=-1, keepdims=True)

