"""Reading and verifying an exported folder's `manifest.json` (standard library only)."""

import hashlib
import json
import os

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder):
    """The folder's manifest as a dict; refuses a `format_version` newer than this reader."""
    path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"No {MANIFEST_FILE} in {folder!r}: not a keras_clip export folder.")
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: format_version must be an int >= 1, received {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}; this clip_edge reads up to version "
            f"{FORMAT_VERSION}. Upgrade clip_edge (pip install -U ./export)."
        )
    return manifest


def verify(folder, manifest, names):
    """Raises ValueError unless each file in `names` exists and matches its SHA-256."""
    files = manifest.get("files", {})
    for name in names:
        if name not in files:
            raise ValueError(f"{name} is not listed in {os.path.join(folder, MANIFEST_FILE)}.")
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ValueError(f"Missing file {path} (listed in the manifest).")
        actual, expected = sha256_file(path), files[name]["sha256"]
        if actual != expected:
            raise ValueError(
                f"SHA-256 mismatch for {path}: expected {expected} (manifest), received "
                f"{actual}. The file is damaged or was modified; re-copy the export folder."
            )
