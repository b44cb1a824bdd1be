"""`ClipEdge`: CLIP towers exported by keras_clip, run with ONNX Runtime."""

import os
import string

import numpy as np

from clip_edge.manifest import read_manifest, resolve
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


def _session(path, options, providers):
    """An onnxruntime session; a file it cannot load is a ValueError naming it."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as error:  # onnxruntime's errors derive from Exception only
        raise ValueError(f"ONNX Runtime cannot load {path}: {error}") from error


def _check_template(template):
    """Raises ValueError unless `template` is a str with exactly one `{}` (and no other field)."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except (TypeError, AttributeError, ValueError):
        fields = None
    if fields != [""]:
        raise ValueError(f"Each template must be a str with exactly one '{{}}', received {template!r:.80}.")


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
        self._image, self._text = (
            _session(resolve(self.folder, files[tower], f"onnx.{tower}.{precision}"), options, providers)
            for tower in ("image_encoder", "text_encoder")
        )
        self.image_size = int(self.manifest["image"]["size"])
        self.mean = tuple(self.manifest["image"]["mean"])
        self.std = tuple(self.manifest["image"]["std"])
        self.context_length = int(self.manifest["text"]["context_length"])
        self.logit_scale = float(self.manifest["logit_scale"])
        self.tokenizer = Tokenizer(resolve(self.folder, vocabulary, "text.vocabulary"), self.context_length)
        self.embed_dim = int(self._text.get_outputs()[0].shape[-1])

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
        if len(pixels) == 0:
            return self._empty()
        outputs = self._image.run(None, {"images": pixels.astype(np.float32)})
        return outputs[1] if normalized else outputs[0]

    def encode_images(self, images, normalized=False):
        """Images (paths, PIL images or uint8 HWC arrays) -> embeddings `(B, D)`.

        `normalized=True` returns unit-norm rows; otherwise the projected embeddings
        (as `keras_clip.CLIP.encode_image`). An empty list gives a `(0, D)` array.
        """
        if isinstance(images, (list, tuple)) and not images:
            return self._empty()
        return self.encode_pixels(self.preprocess(images), normalized)

    def tokenize(self, texts):
        """Captions -> int32 `(B, 77)` ids (identical to `keras_clip.CLIPTokenizer`)."""
        return self.tokenizer(texts)

    def encode_texts(self, texts, normalized=False):
        """Captions (a str or a list of str) -> embeddings `(B, D)`; `[]` gives `(0, D)`.

        Example:
            >>> edge.encode_texts([]).shape  # doctest: +SKIP
            (0, 512)
        """
        token_ids = self.tokenize(texts)
        if len(token_ids) == 0:
            return self._empty()
        outputs = self._text.run(None, {"token_ids": token_ids})
        return outputs[1] if normalized else outputs[0]

    def _empty(self):
        return np.zeros((0, self.embed_dim), np.float32)

    def similarity(self, images, texts):
        """Cosine similarities `(num_images, num_texts)`."""
        return self.encode_images(images, True) @ self.encode_texts(texts, True).T

    def class_embeddings(self, labels, templates=None):
        """One unit vector per label: the renormalised mean over `templates`."""
        if isinstance(labels, str) or not labels:
            raise ValueError(f"`labels` must be a non-empty list of str, received {labels!r:.80}.")
        templates = list(templates or DEFAULT_TEMPLATES)
        for template in templates:
            _check_template(template)
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

