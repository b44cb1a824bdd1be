"""Pretrained weights for the built-in presets: download, verify, convert, cache.

Weights come from the Hugging Face Hub (`open_clip_model.safetensors`, OpenAI
key names) through `huggingface_hub`, pinned to the revision in
`weights.json` and checked against its SHA-256 where one is recorded. They
are converted once, in float32, and cached as a preset folder under
`$KERAS_CLIP_CACHE` (default `~/.cache/keras_clip`). `HF_ENDPOINT`, read at
call time, selects another hub server (a mirror, or a test server).

The cache only ever holds complete, verified folders: the file is downloaded
and converted in a scratch folder next to the cache and the converted folder
is moved into place in one rename. A preset without a recorded SHA-256 is
downloaded with a warning; its tensors are still checked, name by name and
shape by shape, against the preset's architecture before anything is cached.

Example:
    >>> model = keras_clip.from_preset("vit_b32")  # doctest: +SKIP
    >>> # offline: the same weights from a local copy of the file
    >>> model = keras_clip.from_preset("open_clip_model.safetensors")  # doctest: +SKIP
"""

import hashlib
import json
import os
import tempfile
import warnings
from importlib import resources

from keras_clip.presets.checkpoint_files import read_state_dict
from keras_clip.presets.preset_folder import is_preset_folder, load_preset_folder

DEFAULT_ENDPOINT = "https://huggingface.co"
SOURCE_FILE = "source.json"  # provenance written next to the converted weights


def weight_sources():
    """`{preset name: {"repo_id", "filename", "revision", "sha256", ...}}`.

    `revision` is a commit hash, or `"main"` where no pinned commit is known;
    `sha256` and `size_bytes` describe the file, or are None where unknown.
    """
    text = resources.files("keras_clip.presets").joinpath("weights.json").read_text()
    return json.loads(text)


def cache_root():
    """Where converted weights are cached (`$KERAS_CLIP_CACHE` overrides)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "keras_clip")
    return os.environ.get("KERAS_CLIP_CACHE") or default


def cache_folder(name, source):
    """The cached preset folder of preset `name` for the weight `source`."""
    return os.path.join(cache_root(), f"{name}-{source['revision'][:12]}")


def sha256_of(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _endpoint():
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def source_url(source, endpoint=None):
    """The download URL of `source`'s file (`.../{repo}/resolve/{revision}/{file}`)."""
    endpoint = (endpoint or _endpoint()).rstrip("/")
    return f"{endpoint}/{source['repo_id']}/resolve/{source['revision']}/{source['filename']}"


def _download(name, source, directory):
    from huggingface_hub import hf_hub_download

    endpoint = _endpoint()
    try:
        return hf_hub_download(
            source["repo_id"],
            source["filename"],
            revision=source["revision"],
            local_dir=directory,
            endpoint=endpoint,
        )
    except Exception as error:  # offline, HTTP errors, repository moved...
        expected = source.get("sha256") or "not recorded"
        raise OSError(
            f"Could not download the pretrained weights of '{name}': {source['filename']} "
            f"from {source_url(source, endpoint)} ({type(error).__name__}: {error}). "
            f"Without access to that server, fetch the file elsewhere (repository "
            f"{source['repo_id']}, revision {source['revision']}, SHA-256 {expected}), copy "
            f"it to this machine and load it with keras_clip.from_preset("
            f"'/path/to/{source['filename']}'), or set HF_ENDPOINT to a reachable mirror."
        ) from error


def _verify(name, source, path):
    """Checks the SHA-256 (or warns that there is none); returns the file's digest."""
    actual = sha256_of(path)
    expected = source.get("sha256")
    if not expected:
        warnings.warn(
            f"The pretrained weights of '{name}' ({source['filename']} from "
            f"{source['repo_id']} at revision {source['revision']}) are not pinned to a "
            f"SHA-256 in keras_clip, so the file could not be verified (its SHA-256 is "
            f"{actual}). Its tensors are still checked against the '{name}' architecture.",
            stacklevel=4,
        )
    elif actual != expected.lower():
        size = f" ({source['size_bytes']} bytes)" if source.get("size_bytes") else ""
        raise ValueError(
            f"The {source['filename']} downloaded for '{name}' from {source_url(source)} is "
            f"corrupt, truncated or changed upstream: its SHA-256 is {actual} "
            f"({os.path.getsize(path)} bytes), expected {expected}{size}. Nothing was "
            f"cached; try again, or load a verified local copy with keras_clip.from_preset("
            f"'/path/to/{source['filename']}')."
        )
    return actual


def _convert(name, source, config, path):
    """A float32 CLIP model holding the weights of the checkpoint at `path`."""
    from keras_clip.models import CLIP
    from keras_clip.presets.openai_checkpoint import load_state_dict

    try:
        state_dict = read_state_dict(path)
        model = CLIP(config)
        load_state_dict(model, state_dict)
    except ValueError as error:
        raise ValueError(
            f"The {source['filename']} downloaded for '{name}' from {source_url(source)} "
            f"cannot be used: {error}. Nothing was cached."
        ) from error
    return model


def _publish(staged, folder, scratch):
    """Moves the finished folder `staged` to `folder` in one rename."""
    if os.path.lexists(folder):  # an unreadable leftover: move it away, it goes with scratch
        os.replace(folder, os.path.join(scratch, "replaced"))
    try:
        os.replace(staged, folder)
    except OSError:
        if not is_preset_folder(folder):  # not a concurrent process's finished copy
            raise


def _load_cached(name, folder, dtype):
    if not is_preset_folder(folder):
        return None
    try:
        return load_preset_folder(folder, dtype=dtype)
    except ValueError as error:
        warnings.warn(
            f"The cached weights of '{name}' in {folder} are unreadable ({error}); "
            "downloading them again.",
            stacklevel=3,
        )
        return None


def load_pretrained(name, config, dtype=None):
    """Returns the CLIP preset `name` with its pretrained weights.

    The first call downloads, verifies and converts the weights and caches the
    result under `cache_root()`; later calls read the cache without network.

    Args:
        name: a built-in preset name with an entry in `weights.json`.
        config: the preset's `CLIPConfig`; the checkpoint must match it.
        dtype: optional dtype policy of the returned model. The cache always
            holds float32 weights.

    Raises:
        OSError: the file could not be downloaded (offline, server down...).
        ValueError: the file is corrupt, truncated, or does not fit `config`.
    """
    source = weight_sources()[name]
    folder = cache_folder(name, source)
    model = _load_cached(name, folder, dtype)
    if model is not None:
        return model
    os.makedirs(cache_root(), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root(), prefix=".download-") as scratch:
        path = _download(name, source, os.path.join(scratch, "download"))
        digest = _verify(name, source, path)
        model = _convert(name, source, config, path)
        staged = os.path.join(scratch, "preset")
        model.save_to_preset(staged)
        provenance = {key: source.get(key) for key in ("repo_id", "filename", "revision")}
        provenance.update(endpoint=_endpoint(), sha256=digest, pinned=bool(source.get("sha256")))
        with open(os.path.join(staged, SOURCE_FILE), "w", encoding="utf-8") as file:
            json.dump(provenance, file, indent=2)
            file.write("\n")
        _publish(staged, folder, scratch)
    if dtype is not None:  # converted in float32; cast on the way out of the cache
        return load_preset_folder(folder, dtype=dtype)
    return model
