"""`ClipEdge`: CLIP towers exported by keras_clip, run with ONNX Runtime or LiteRT."""

import os
import string

import numpy as np

from clip_edge.graphs import (
    GraphPreprocessor,
    GraphTokenizer,
    has_extensions,
    session_for,
)
from clip_edge.manifest import read_manifest, resolve
from clip_edge.manifest import verify as verify_sha256
from clip_edge.preprocess import preprocess
from clip_edge.tokenizer import Tokenizer
from clip_edge.towers import load_towers, tower_files
from clip_edge.verify import check_conformance

DEFAULT_TEMPLATES = ("a photo of a {}.",)
PREPROCESS = ("graph", "python")
GRAPHS = {"text_tokenizer": "text_tokenizer.onnx", "image_preprocessor": "image_preprocessor.onnx"}
BYTES_GRAPH = "image_bytes_preprocessor"  # optional: newer exports list it


def normalize(x):
    """Rows divided by their L2 norm."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _check_template(template):
    """Raises ValueError unless `template` is a str with exactly one `{}` (and no other field)."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except (TypeError, AttributeError, ValueError):
        fields = None
    if fields != [""]:
        raise ValueError(f"Each template must be a str with exactly one '{{}}', received {template!r:.80}.")


def has_graphs(manifest):
    """Whether the manifest lists both pre-processing graphs (folders exported before them do not)."""
    graphs = manifest.get("graphs") or {}
    return all(key in graphs for key in GRAPHS)


def preprocess_path(folder, manifest, preprocess):
    """`preprocess` checked; `None` means "graph" when the manifest lists the graphs, else "python"."""
    if preprocess is None:
        return "graph" if has_graphs(manifest) else "python"
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, received {preprocess!r:.40}.")
    if preprocess == "graph" and not has_graphs(manifest):
        raise ValueError(f"{folder} predates the pre-processing graphs (its manifest lists no "
                         f"{' / '.join(GRAPHS.values())}): use preprocess='python' or re-export.")
    return preprocess


class ClipEdge:
    """Loads an export folder (manifest.json + towers) and runs CLIP with it.

    Args:
        folder: the folder `keras-clip export` wrote.
        runtime: `"onnx"` (ONNX Runtime) or `"litert"` (the `.tflite` towers, with
            ai-edge-litert: `pip install "clip-edge[litert]"`).
        precision: `"fp32"`, `"fp16"` or `"int8"` (that variant must have been exported).
        preprocess: `"graph"` (`text_tokenizer.onnx` and `image_preprocessor.onnx`),
            `"python"` (the Python tokenizer and PIL), or `None`: "graph" when the
            manifest lists the graphs, else "python".
        providers: onnxruntime providers for the ONNX towers; default CUDA first
            when available, then CPU.
        verify: check each loaded file's SHA-256 against the manifest (default True).

    Example:
        >>> edge = ClipEdge("vit_b32_export", runtime="litert", precision="int8")  # doctest: +SKIP
        >>> probs = edge.zero_shot(["cat.jpg"], ["cat", "dog"])  # doctest: +SKIP
        >>> probs.shape  # doctest: +SKIP
        (1, 2)
    """

    def __init__(self, folder, *, runtime="onnx", precision="fp32", preprocess=None, providers=None,
                 verify=True):
        self.folder = os.fspath(folder)
        self.manifest = read_manifest(self.folder)
        self.runtime, self.precision, self._check_sha256 = runtime, precision, verify
        self.preprocessing = preprocess_path(self.folder, self.manifest, preprocess)
        towers = tower_files(self.folder, self.manifest, runtime, precision)
        if verify:
            verify_sha256(self.folder, self.manifest, self._needed_files(towers))
        self._image, self._text = load_towers(self.folder, self.manifest, runtime, precision, providers)
        self.image_size = int(self.manifest["image"]["size"])
        self.mean = tuple(self.manifest["image"]["mean"])
        self.std = tuple(self.manifest["image"]["std"])
        self.resize_mode = self.manifest["image"].get("resize_mode", "shortest")
        self.context_length = int(self.manifest["text"]["context_length"])
        self.logit_scale = float(self.manifest["logit_scale"])
        self.embed_dim = self._text.embed_dim
        if self.preprocessing == "graph":
            self.tokenizer = GraphTokenizer(self._graph("text_tokenizer", True), self.context_length)
            self._graph_preprocessor = GraphPreprocessor(self._graph("image_preprocessor", False),
                                                         self._bytes_graph())
        else:
            vocabulary = resolve(self.folder, self.manifest["text"]["vocabulary"], "text.vocabulary")
            self.tokenizer = Tokenizer(vocabulary, self.context_length)

    def _needed_files(self, towers):
        """The manifest's files this runtime and pre-processing path will open."""
        names = list(towers.values())
        names += [name + ".data" for name in towers.values() if name + ".data" in self.manifest["files"]]
        if self.preprocessing == "graph":
            optional = [BYTES_GRAPH] if BYTES_GRAPH in self.manifest["graphs"] else []
            return names + [self.manifest["graphs"][key] for key in [*GRAPHS, *optional]]
        return names + [self.manifest["text"]["vocabulary"]]

    def _bytes_graph(self):
        """`image_bytes_preprocessor.onnx` if listed and onnxruntime-extensions is installed, else None."""
        if BYTES_GRAPH not in self.manifest["graphs"] or not has_extensions():
            return None
        return self._graph(BYTES_GRAPH, True)

    def _graph(self, key, custom_ops):
        path = resolve(self.folder, self.manifest["graphs"][key], f"graphs.{key}")
        return session_for(path, ["CPUExecutionProvider"], custom_ops)

    @property
    def providers(self):
        return self._image.providers

    def preprocess(self, images):
        """Paths / file bytes / PIL images / uint8 arrays -> float32 `(B, S, S, 3)`.

        Runs `image_preprocessor.onnx` on the graph path, PIL on the Python path.
        """
        if self.preprocessing == "graph":
            return self._graph_preprocessor(images)
        return preprocess(images, self.image_size, self.mean, self.std, self.resize_mode)

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
        outputs = self._image.run(pixels.astype(np.float32))
        return outputs[1] if normalized else outputs[0]

    def encode_images(self, images, normalized=False):
        """Images (paths, file bytes, PIL images or uint8 HWC arrays) -> embeddings `(B, D)`.

        `normalized=True` returns unit-norm rows; otherwise the projected embeddings
        (as `keras_clip.CLIP.encode_image`). An empty list gives a `(0, D)` array.
        """
        if isinstance(images, (list, tuple)) and not images:
            return self._empty()
        return self.encode_pixels(self.preprocess(images), normalized)

    def tokenize(self, texts):
        """Captions -> int32 `(B, 77)` ids (`keras_clip.CLIPTokenizer`'s; see export/README.md for the graph's)."""
        return self.tokenizer(texts)

    def encode_texts(self, texts, normalized=False):
        """Captions (a str or a list of str) -> embeddings `(B, D)`; `[]` gives `(0, D)`.

        Example:
            >>> edge.encode_texts([]).shape  # doctest: +SKIP
            (0, 512)
        """
        return self.encode_token_ids(self.tokenize(texts), normalized)

    def encode_token_ids(self, token_ids, normalized=False):
        """Token ids int32 `(B, L)` (from `tokenize`) -> embeddings `(B, D)`."""
        if len(token_ids) == 0:
            return self._empty()
        outputs = self._text.run(np.asarray(token_ids, np.int32))
        return outputs[1] if normalized else outputs[0]

    def verify(self):
        """Runs the folder's `conformance.npz` through this runtime and pre-processing path.

        Returns a `clip_edge.verify.Conformance` (`.passed`, `.cosines`,
        `.token_agreement`, `.lines()`); a folder exported without one is a ValueError.

        Example:
            >>> ClipEdge("vit_b32_export", runtime="litert").verify().passed  # doctest: +SKIP
            True
        """
        return check_conformance(self, self._check_sha256)

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

