"""Reading and verifying an exported folder's `manifest.json` (standard library only).

Every path the manifest names must resolve (symbolic links included) inside the
export folder; a manifest that names another place is refused, so a tampered or
hostile folder cannot make `ClipEdge` open files elsewhere.

Example:
    >>> manifest = read_manifest("vit_b32_export")  # doctest: +SKIP
    >>> resolve("vit_b32_export", manifest["text"]["vocabulary"], "text.vocabulary")  # doctest: +SKIP
    '/home/me/vit_b32_export/bpe_simple_vocab_16e6.txt.gz'
"""

import hashlib
import json
import math
import os
import re

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SHA256 = re.compile(r"[0-9a-f]{64}")
KINDS = {int: "an int", str: "a str", list: "a list", dict: "a dict"}
RESIZE_MODES = ("shortest", "squash")


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(folder, name, field):
    """Real path of the manifest entry `name` (at `field`); refuses one outside `folder`."""
    where = os.path.join(folder, MANIFEST_FILE)
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\0" in name:
        raise ValueError(f"{where}: {field} must be a relative path inside the folder, received {name!r:.80}.")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(
            f"{where}: {field} {name!r:.80} resolves to {path}, outside the export folder {root}; refused."
        )
    return path


def read_manifest(folder):
    """The folder's manifest as a dict, checked (see `check_manifest`).

    Refuses a `format_version` newer than this reader.
    """
    path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"No {MANIFEST_FILE} in {folder!r}: not a keras_clip export folder.")
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: format_version must be an int >= 1, received {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}; this clip_edge reads up to version "
            f"{FORMAT_VERSION}. Upgrade clip_edge (pip install -U ./export)."
        )
    check_manifest(folder, manifest)
    return manifest


def _field(manifest, dotted, kind, where):
    """The value at `dotted` (e.g. "text.vocabulary"), which must be a `kind`."""
    value = manifest
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = KINDS.get(kind, "a number")
        raise ValueError(f"{where}: {dotted} must be {expected}, received {value!r:.80}.")
    return value


def check_manifest(folder, manifest):
    """Raises ValueError naming the field unless the manifest can be used safely.

    Checks the fields `ClipEdge` reads (image size, mean, std, resize mode, context length,
    vocabulary, a finite positive logit scale, each file's SHA-256; when present,
    the LiteRT towers, graphs and conformance thresholds) and that every listed
    path resolves inside `folder`.
    """
    where = os.path.join(folder, MANIFEST_FILE)
    if _field(manifest, "image.size", int, where) < 1:
        raise ValueError(f"{where}: image.size must be >= 1, received {manifest['image']['size']}.")
    for key in ("image.mean", "image.std"):
        values = _field(manifest, key, list, where)
        if len(values) != 3 or not all(_finite(v) for v in values):
            raise ValueError(f"{where}: {key} must be 3 finite numbers, received {values!r:.80}.")
    if min(manifest["image"]["std"]) <= 0:
        raise ValueError(f"{where}: image.std must be positive, received {manifest['image']['std']}.")
    if manifest["image"].get("resize_mode", "shortest") not in RESIZE_MODES:  # absent before: shortest
        raise ValueError(f"{where}: image.resize_mode must be one of {RESIZE_MODES}, "
                         f"received {manifest['image']['resize_mode']!r:.80}.")
    if _field(manifest, "text.context_length", int, where) < 2:
        raise ValueError(f"{where}: text.context_length must be >= 2, received {manifest['text']['context_length']}.")
    resolve(folder, _field(manifest, "text.vocabulary", str, where), "text.vocabulary")
    scale = _field(manifest, "logit_scale", (int, float), where)
    if not _finite(scale) or scale <= 0:
        raise ValueError(f"{where}: logit_scale must be a finite positive number, received {scale!r}.")
    for name, entry in _field(manifest, "files", dict, where).items():
        resolve(folder, name, "files")
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or not SHA256.fullmatch(sha):
            raise ValueError(f"{where}: files[{name!r}].sha256 must be 64 hex digits, received {sha!r:.80}.")
    _check_towers(folder, manifest, "onnx", where)
    _check_optional(folder, manifest, where)


def _check_towers(folder, manifest, runtime, where):
    """`manifest[runtime]` maps each tower to `{precision: file}`, every file inside `folder`."""
    for tower, variants in _field(manifest, runtime, dict, where).items():
        if not isinstance(variants, dict):
            raise ValueError(f"{where}: {runtime}.{tower} must map precisions to files, received {variants!r:.80}.")
        for precision, name in variants.items():
            resolve(folder, name, f"{runtime}.{tower}.{precision}")


def _check_optional(folder, manifest, where):
    """The keys newer exports add (`litert`, `graphs`, `conformance`), when present."""
    if "litert" in manifest:
        _check_towers(folder, manifest, "litert", where)
    if "graphs" in manifest:
        for key, name in _field(manifest, "graphs", dict, where).items():
            resolve(folder, name, f"graphs.{key}")
    if "conformance" in manifest:
        resolve(folder, _field(manifest, "conformance.file", str, where), "conformance.file")
        for precision, values in _field(manifest, "conformance.thresholds", dict, where).items():
            if not isinstance(values, dict) or not all(_fraction(v) for v in values.values()):
                raise ValueError(f"{where}: conformance.thresholds.{precision} must map towers to "
                                 f"numbers in [0, 1], received {values!r:.80}.")
        if not _fraction(_field(manifest, "conformance.token_agreement", (int, float), where)):
            raise ValueError(f"{where}: conformance.token_agreement must be a number in [0, 1].")


def _fraction(value):
    return _finite(value) and 0 <= value <= 1


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def verify(folder, manifest, names):
    """Raises ValueError unless each file in `names` is listed, exists and matches its SHA-256."""
    files = manifest["files"]
    for name in names:
        if name not in files:
            raise ValueError(f"{name} is not listed in {os.path.join(folder, MANIFEST_FILE)}.")
        path = resolve(folder, name, "files")
        if not os.path.isfile(path):
            raise ValueError(f"Missing file {path} (listed in the manifest).")
        actual, expected = sha256_file(path), files[name]["sha256"]
        if actual != expected:
            raise ValueError(
                f"SHA-256 mismatch for {path}: expected {expected} (manifest), received "
                f"{actual}. The file is damaged or was modified; re-copy the export folder."
            )
