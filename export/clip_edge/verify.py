"""Conformance on the device: the folder's `conformance.npz` run through a `ClipEdge`.

`keras-clip export` stores fixed captions and raw images with the Keras
embeddings (and `CLIPTokenizer` ids) for them. `check_conformance(edge)` feeds
them through `edge`'s runtime, precision and pre-processing path and compares:
per tower the minimum cosine to the stored embeddings, and the token-id
agreement (the fraction of captions whose ids equal the stored ones), against
the thresholds in `manifest["conformance"]`.

Example:
    >>> result = check_conformance(ClipEdge("vit_b32_export", runtime="litert"))  # doctest: +SKIP
    >>> print("\\n".join(result.lines()))  # doctest: +SKIP
    image_encoder: min cosine 0.9999999 over 4 images (threshold 0.999) ok
    text_encoder: min cosine 0.9999999 over 10 captions (threshold 0.9999) ok
    token ids: agreement 1.0000, 10/10 captions (threshold 1.0) ok
    PASS (litert fp32, graph pre-processing, vit_b32_export)
"""

import dataclasses
import os
import zipfile

import numpy as np

from clip_edge.manifest import resolve
from clip_edge.manifest import verify as verify_sha256

REQUIRED = ("captions", "token_ids", "image_count", "image_embeddings")


@dataclasses.dataclass
class Conformance:
    """What `check_conformance` measured.

    `cosines`, `thresholds` and `counts` are keyed by tower (`image_encoder`,
    `text_encoder`; the text tower only when the file stores text embeddings).
    """

    label: str
    cosines: dict
    thresholds: dict
    counts: dict
    token_agreement: float
    token_threshold: float
    captions: int

    @property
    def passed(self):
        towers = all(self.cosines[t] >= self.thresholds[t] for t in self.cosines)
        return towers and self.token_agreement >= self.token_threshold

    def lines(self):
        """One line per tower, one for the token ids, then PASS or FAIL."""
        lines = []
        for tower, cosine in self.cosines.items():
            threshold = self.thresholds[tower]
            lines.append(f"{tower}: min cosine {cosine:.7f} over {self.counts[tower]} "
                         f"(threshold {threshold}) {'ok' if cosine >= threshold else 'BELOW'}")
        same = round(self.token_agreement * self.captions)
        ok = "ok" if self.token_agreement >= self.token_threshold else "BELOW"
        lines.append(f"token ids: agreement {self.token_agreement:.4f}, {same}/{self.captions} captions "
                     f"(threshold {self.token_threshold}) {ok}")
        lines.append(f"{'PASS' if self.passed else 'FAIL'} ({self.label})")
        return lines


def load_conformance(folder, manifest, check_sha256=True):
    """The folder's conformance arrays as a dict, or a one-line ValueError."""
    entry = manifest.get("conformance")
    if entry is None:
        raise ValueError(f"{folder} was exported before conformance files (no 'conformance' in its "
                         "manifest.json); re-export it with keras-clip export.")
    if check_sha256:
        verify_sha256(folder, manifest, [entry["file"]])
    path = resolve(folder, entry["file"], "conformance.file")
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable conformance file: {error}") from error
    count = int(values["image_count"]) if "image_count" in values else -1
    missing = [k for k in (*REQUIRED, *(f"image_{i}" for i in range(max(count, 0)))) if k not in values]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; re-export the folder.")
    return values


def _threshold(table, precision, tower):
    """The manifest's threshold for `tower` at `precision` (keys `image`/`text` or the tower name)."""
    values = table.get(precision, {})
    value = values.get(tower, values.get(tower.split("_")[0]))
    if value is None:
        raise ValueError(f"manifest.json: conformance.thresholds has no {precision} value for {tower}.")
    return float(value)


def _min_cosine(a, b, what):
    if a.shape != b.shape:
        raise ValueError(f"conformance.npz: {what} has shape {b.shape}; this folder's towers give {a.shape}.")
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=-1)))


def check_conformance(edge, check_sha256=True):
    """Runs the folder's conformance file through `edge` (a `ClipEdge`); returns a `Conformance`."""
    entry, data = edge.manifest.get("conformance"), load_conformance(edge.folder, edge.manifest, check_sha256)
    captions = [str(caption) for caption in data["captions"]]
    token_ids = edge.tokenize(captions)
    stored_ids = data["token_ids"]
    if stored_ids.shape != token_ids.shape:
        raise ValueError(f"conformance.npz: token_ids has shape {stored_ids.shape}; "
                         f"this folder's tokenizer gives {token_ids.shape}.")
    agreement = float(np.mean(np.all(token_ids == stored_ids, axis=-1))) if captions else 1.0
    images = [data[f"image_{i}"] for i in range(int(data["image_count"]))]
    cosines = {"image_encoder": _min_cosine(edge.encode_images(images), data["image_embeddings"],
                                             "image_embeddings")}
    counts = {"image_encoder": f"{len(images)} images"}
    if "text_embeddings" in data:
        cosines["text_encoder"] = _min_cosine(edge.encode_token_ids(token_ids), data["text_embeddings"],
                                                 "text_embeddings")
        counts["text_encoder"] = f"{len(captions)} captions"
    thresholds = {tower: _threshold(entry["thresholds"], edge.precision, tower) for tower in cosines}
    label = f"{edge.runtime} {edge.precision}, {edge.preprocessing} pre-processing, {os.path.basename(edge.folder)}"
    return Conformance(label, cosines, thresholds, counts, agreement, float(entry["token_agreement"]),
                       len(captions))
