"""Pretrained weights for the built-in presets: download, verify, convert, cache.

Weights come from the Hugging Face Hub (`open_clip_model.safetensors`, OpenAI
key names) through `huggingface_hub`, pinned to the revision in
`weights.json`, checked against its SHA-256, converted once and cached as a
preset folder under `$KERAS_CLIP_CACHE` (default `~/.cache/keras_clip`).
`HF_ENDPOINT` selects another hub server (a mirror, or a test server).
"""

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources

from keras_clip.presets.checkpoint_files import read_state_dict
from keras_clip.presets.preset_folder import is_preset_folder, load_preset_folder


def weight_sources():
    """`{preset name: {"repo_id", "filename", "revision", "sha256", ...}}`."""
    text = resources.files("keras_clip.presets").joinpath("weights.json").read_text()
    return json.loads(text)


def cache_root():
    """Where converted weights are cached (`$KERAS_CLIP_CACHE` overrides)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "keras_clip")
    return os.environ.get("KERAS_CLIP_CACHE", default)


def sha256_of(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name, source, directory):
    from huggingface_hub import hf_hub_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        return hf_hub_download(
            source["repo_id"],
            source["filename"],
            revision=source["revision"],
            local_dir=directory,
            endpoint=endpoint,
        )
    except Exception as error:  # offline, HTTP errors, repository moved...
        url = (
            f"{endpoint or 'https://huggingface.co'}/{source['repo_id']}"
            f"/blob/{source['revision']}/{source['filename']}"
        )
        raise OSError(
            f"Could not download the '{name}' weights ({source['filename']} from {url}): "
            f"{type(error).__name__}: {error}. On a machine without access, copy that file "
            f"here and load it with keras_clip.from_preset('/path/to/{source['filename']}')."
        ) from error


def load_pretrained(name, config, dtype=None):
    """Returns the CLIP preset `name` with its pretrained weights (cached after the first call)."""
    from keras_clip.models import CLIP
    from keras_clip.presets.openai_checkpoint import load_state_dict

    source = weight_sources()[name]
    folder = os.path.join(cache_root(), f"{name}-{source['revision'][:12]}")
    if is_preset_folder(folder):
        return load_preset_folder(folder, dtype=dtype)
    os.makedirs(cache_root(), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root(), prefix=".download-") as scratch:
        path = _download(name, source, os.path.join(scratch, "download"))
        expected = source.get("sha256")
        if expected and sha256_of(path) != expected:
            raise ValueError(
                f"The downloaded {source['filename']} for '{name}' has SHA-256 "
                f"{sha256_of(path)}, expected {expected} (corrupt or changed upstream); "
                "nothing was cached, try again."
            )
        model = CLIP(config, dtype=dtype)
        load_state_dict(model, read_state_dict(path))
        staged = os.path.join(scratch, "preset")
        model.save_to_preset(staged)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staged, folder)  # atomic: the cache never holds a half-written folder
    return model
