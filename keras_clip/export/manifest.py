"""`manifest.json`: what an exported folder holds and how to feed its towers.

The manifest is plain JSON so that a device needs nothing but the standard
library to read it. `format_version` grows when a reader would misread the
folder; readers refuse versions newer than they know.

Example:
    >>> from keras_clip.export.manifest import read_manifest
    >>> manifest = read_manifest("exported/")  # doctest: +SKIP
    >>> manifest["image"]["size"]  # doctest: +SKIP
    224
"""

import hashlib
import json
import os

from keras_clip.digest import sha256_file
from keras_clip.tokenizer import END_TOKEN_ID, START_TOKEN_ID

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
RESIZE_RULES = {
    "shortest": "resize shortest side to size (PIL bicubic, antialiased), center crop size x size",
    "squash": "resize to size x size (PIL bicubic, antialiased), no crop",
}


def list_files(directory, relative_paths):
    """Every regular file under each of `relative_paths` (files or folders), sorted."""
    files = []
    for relative in relative_paths:
        full = os.path.join(directory, relative)
        if os.path.isdir(full):
            for root, _, names in os.walk(full):
                for name in names:
                    files.append(os.path.relpath(os.path.join(root, name), directory))
        elif os.path.isfile(full):
            files.append(relative)
    return sorted(path.replace(os.sep, "/") for path in files)


def file_entries(directory, relative_paths):
    """`{relative path: {"sha256", "bytes"}}` for every file under `relative_paths`."""
    entries = {}
    for relative in list_files(directory, relative_paths):
        full = os.path.join(directory, relative)
        entries[relative] = {"sha256": sha256_file(full), "bytes": os.path.getsize(full)}
    return entries


def model_values(model, architecture=None):
    """The manifest's description of `model` (everything but files and exporters)."""
    config = model.config
    text = config.text
    return {
        "format_version": FORMAT_VERSION,
        "architecture": architecture or config.name,
        "vision_type": config.vision.type,
        "embed_dim": int(config.embed_dim),
        "logit_scale": float(model.logit_scale),
        "image": {
            "size": int(config.vision.image_size),
            "mean": list(config.preprocessing.mean),
            "std": list(config.preprocessing.std),
            "resize_mode": config.preprocessing.resize_mode,
            "resize": RESIZE_RULES[config.preprocessing.resize_mode],
            "layout": "NHWC float32, RGB scaled to [0, 1] then (x - mean) / std",
            "input": "images",
        },
        "text": {
            "context_length": int(text.context_length),
            "vocab_size": int(text.vocab_size),
            "start_token_id": START_TOKEN_ID,
            "end_token_id": END_TOKEN_ID,
            "pad_token_id": 0,
            "cleaning": "ftfy.fix_text, html.unescape twice, collapse whitespace, lowercase",
            "vocabulary": VOCABULARY_FILE,
            "input": "token_ids",
        },
        "outputs": ["embeddings", "normalized_embeddings"],
        "config": config.to_dict(),
    }


def write_manifest(directory, values):
    """Writes `values` to `directory/manifest.json`; returns its path."""
    path = os.path.join(directory, MANIFEST_FILE)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(values, file, indent=2, sort_keys=True)
        file.write("\n")
    return path


def read_manifest(directory):
    """Reads and checks `directory/manifest.json`.

    Raises:
        ValueError: the file is missing or not JSON, or its `format_version` is
            newer than this reader (`FORMAT_VERSION`).
    """
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"No {MANIFEST_FILE} in {directory}: not an exported keras_clip folder.")
    try:
        with open(path, encoding="utf-8") as file:
            values = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    version = values.get("format_version") if isinstance(values, dict) else None
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path} has format_version {version!r}; expected an int >= 1.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}, newer than this reader "
            f"(version {FORMAT_VERSION}). Upgrade keras_clip / clip_edge to read it."
        )
    return values


def verify_files(directory, manifest, names=None):
    """Checks the SHA-256 of each file listed in `manifest["files"]` (or just `names`).

    Raises:
        ValueError: a file is missing or its SHA-256 differs from the manifest's.
    """
    files = manifest.get("files", {})
    for name in names if names is not None else sorted(files):
        if name not in files:
            raise ValueError(f"{name} is not listed in {directory}/{MANIFEST_FILE}.")
        full = os.path.join(directory, name)
        if not os.path.isfile(full):
            raise ValueError(f"Missing file {full} (listed in {MANIFEST_FILE}).")
        actual = sha256_file(full)
        expected = files[name]["sha256"]
        if actual != expected:
            raise ValueError(
                f"SHA-256 mismatch for {full}: expected {expected} (manifest), "
                f"received {actual}. The file is damaged or was modified."
            )


def source_record(spec, random_weights=False):
    """The manifest's `source`: where an exported model's weights came from.

    Args:
        spec: a built-in preset name, or the path of the checkpoint file or
            folder the model was loaded from.
        random_weights: True if the weights are random (not trained).

    Returns:
        `{"preset" or "path", "sha256", "random_weights"}`: for a preset, the
        pinned SHA-256 of its weights file (None if random or not pinned); for
        a file, its SHA-256; for a folder, the SHA-256 of its `sha256sum`
        listing (`<sha256>  <relative path>` lines, sorted by path).

    Example:
        >>> source_record("vit_b32", random_weights=True)
        {'preset': 'vit_b32', 'sha256': None, 'random_weights': True}
    """
    from keras_clip.presets.catalog import list_presets, weight_sources

    if spec in list_presets():
        digest = None if random_weights else weight_sources().get(spec, {}).get("sha256")
        return {"preset": spec, "sha256": digest, "random_weights": bool(random_weights)}
    if os.path.isdir(spec):
        listing = "".join(f"{sha256_file(os.path.join(spec, path))}  {path}\n"
                          for path in list_files(spec, sorted(os.listdir(spec))))
        digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    else:
        digest = sha256_file(spec)
    return {"path": os.fspath(spec), "sha256": digest, "random_weights": bool(random_weights)}
