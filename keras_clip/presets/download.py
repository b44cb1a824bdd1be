"""Pretrained weights for the built-in presets: download, verify, convert, cache.

Weights come from the Hugging Face Hub (`open_clip_model.safetensors`, OpenAI
key names) through `huggingface_hub`'s HTTP session, pinned to the revision in
`weights.json` and checked against its SHA-256 where one is recorded. They
are converted once, in float32, and cached as a preset folder under
`$KERAS_CLIP_CACHE` (default `~/.cache/keras_clip`). `HF_ENDPOINT`, read at
call time, selects another hub server (a mirror, or a test server).

Every download is also checked against the hub's own description of the file
(its ETag, which for Git LFS files is the SHA-256, and its size), and must
finish within `$KERAS_CLIP_DOWNLOAD_TIMEOUT` seconds (default 3600), so a
server that drips bytes cannot hang the caller.

The cache only ever holds complete, verified folders: the file is downloaded
and converted in a `.download-*` scratch folder next to the cache and the
converted folder is moved into place in one rename. A valid cached folder is
never moved or removed by a later download (readers never miss it); an
unreadable leftover is overwritten file by file. Scratch folders left by a
killed download are removed by the next download once a day old.

A preset without a recorded SHA-256 is downloaded with a warning; its tensors
are still checked, name by name and shape by shape, against the preset's
architecture, and its cache entry records the file's SHA-256 and the hub's
ETag. Each later load asks the hub (a few seconds at most; offline, the cache
is used silently) whether it still serves that file; if not, the entry is
evicted and the new file downloaded.

Example:
    >>> model = keras_clip.from_preset("vit_b32")  # doctest: +SKIP
    >>> # offline: the same weights from a local copy of the file
    >>> model = keras_clip.from_preset("open_clip_model.safetensors")  # doctest: +SKIP
"""

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings

import keras

from keras_clip.digest import sha256_file
from keras_clip.models import CLIP
from keras_clip.models.preset_folder import CONFIG_FILE, WEIGHTS_FILE, is_preset_folder
from keras_clip.presets.catalog import weight_sources
from keras_clip.presets.checkpoint_files import read_state_dict

DEFAULT_ENDPOINT = "https://huggingface.co"
SOURCE_FILE = "source.json"  # provenance written next to the converted weights
TIMEOUT_VARIABLE = "KERAS_CLIP_DOWNLOAD_TIMEOUT"
DEFAULT_DOWNLOAD_TIMEOUT = 3600.0  # seconds for one whole download
READ_TIMEOUT = 10.0  # seconds without a byte before a request fails
REVALIDATE_TIMEOUT = 3.0  # seconds for the hub check of a cached unpinned entry
SCRATCH_PREFIX = ".download-"
STALE_SCRATCH_AGE = 24 * 3600.0  # seconds


class DownloadTimeoutError(TimeoutError):
    """A download did not finish within `download_timeout()` seconds."""


def cache_root():
    """Where converted weights are cached (`$KERAS_CLIP_CACHE` overrides)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "keras_clip")
    return os.environ.get("KERAS_CLIP_CACHE") or default


def cache_folder(name, source):
    """The cached preset folder of preset `name` for the weight `source`."""
    return os.path.join(cache_root(), f"{name}-{source['revision'][:12]}")


def download_timeout():
    """Seconds one download may take in all (`$KERAS_CLIP_DOWNLOAD_TIMEOUT`, default 3600).

    Example:
        >>> os.environ["KERAS_CLIP_DOWNLOAD_TIMEOUT"] = "7200"  # doctest: +SKIP
        >>> download_timeout()  # doctest: +SKIP
        7200.0
    """
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_DOWNLOAD_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}.")
    return seconds


def _endpoint():
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def source_url(source, endpoint=None):
    """The download URL of `source`'s file (`.../{repo}/resolve/{revision}/{file}`)."""
    endpoint = (endpoint or _endpoint()).rstrip("/")
    return f"{endpoint}/{source['repo_id']}/resolve/{source['revision']}/{source['filename']}"


def _hub_metadata(source, timeout):
    """The hub's `HfFileMetadata` (etag, size, commit_hash) of `source`'s file."""
    import huggingface_hub.constants
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.utils import OfflineModeIsEnabled

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise OfflineModeIsEnabled("HF_HUB_OFFLINE is set")
    return get_hf_file_metadata(source_url(source), timeout=timeout, endpoint=_endpoint())


def _fetch(url, path, deadline):
    """Streams `url` into `path`; raises `DownloadTimeoutError` past `deadline`."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
    timeout = max(min(READ_TIMEOUT, deadline - time.monotonic()), 0.1)
    with get_session().stream(
        "GET", url, headers=headers, follow_redirects=True, timeout=timeout
    ) as response:
        hf_raise_for_status(response)
        with open(path, "wb") as file:
            for chunk in response.iter_bytes():  # as the bytes arrive, never buffered up
                file.write(chunk)
                if time.monotonic() > deadline:
                    raise DownloadTimeoutError(f"{file.tell()} bytes received")


def _download(name, source, directory):
    """Downloads `source`'s file into `directory`: `(path, hub metadata)`."""
    timeout = download_timeout()
    deadline = time.monotonic() + timeout
    url = source_url(source)
    path = os.path.join(directory, source["filename"])
    os.makedirs(directory, exist_ok=True)
    try:
        metadata = _hub_metadata(source, timeout=min(READ_TIMEOUT, timeout))
        _fetch(url, path, deadline)
    except DownloadTimeoutError as error:
        raise DownloadTimeoutError(
            f"Downloading {source['filename']} for '{name}' from {url} did not finish within "
            f"{timeout:g} s ({error}): the server is too slow or stalled. Nothing was cached. "
            f"Set {TIMEOUT_VARIABLE} to more seconds, or load a local copy with "
            f"keras_clip.from_preset('/path/to/{source['filename']}')."
        ) from None
    except Exception as error:  # offline, HTTP errors, repository moved...
        reason = f"{type(error).__name__}: {' '.join(str(error).split())}"
        if _unreachable(error):
            reason = f"cannot reach {_endpoint()}: {reason}"
        expected = source.get("sha256") or "not recorded"
        raise OSError(
            f"Could not download the pretrained weights of '{name}': {source['filename']} "
            f"from {url} ({reason}). Without access to that server, fetch the file elsewhere "
            f"(repository {source['repo_id']}, revision {source['revision']}, SHA-256 "
            f"{expected}), copy it to this machine and load it with keras_clip.from_preset("
            f"'/path/to/{source['filename']}'), set HF_ENDPOINT to a reachable mirror, or "
            f"use random weights: from_preset('{name}', weights=None) (keras-clip: "
            f"--random-weights)."
        ) from None  # one message, not the HTTP client's chained tracebacks
    return path, metadata


def _unreachable(error):
    """True if `error` (or what caused it) says the host cannot be reached at all."""
    while error is not None:
        if isinstance(error, (ConnectionError, socket.gaierror)) or \
                type(error).__name__ in ("ConnectError", "ConnectTimeout"):
            return True
        error = error.__cause__ or error.__context__
    return False


def _is_sha256(text):
    return bool(re.fullmatch(r"[0-9a-f]{64}", text or ""))


def _check_hub_metadata(name, source, path, digest, metadata):
    """Raises when the file is not the one the hub describes (LFS SHA-256 ETag, size)."""
    etag, size = (metadata.etag or "").lower(), os.path.getsize(path)
    if (_is_sha256(etag) and etag != digest) or metadata.size not in (None, size):
        raise ValueError(
            f"The {source['filename']} downloaded for '{name}' from {source_url(source)} is "
            f"not the file the hub describes: its SHA-256 is {digest} ({size} bytes), the hub "
            f"reports ETag {metadata.etag} ({metadata.size} bytes). It was corrupted or "
            f"changed in transit. Nothing was cached; try again."
        )


def _verify(name, source, path, metadata):
    """Checks the SHA-256 (or warns that there is none) and the hub's ETag; returns the digest."""
    actual = sha256_file(path)
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
    _check_hub_metadata(name, source, path, actual, metadata)
    return actual


def _convert(name, source, config, path, dtype, model_kwargs):
    """`(model, float32 model)` holding the weights of the checkpoint at `path`.

    The model is built as asked (`dtype`, `model_kwargs`) and the converted
    weights are cast on load; the float32 one, for the cache, is the same
    model unless the asked dtype stores its variables in lower precision.
    """
    from keras_clip.presets.openai_checkpoint import load_state_dict

    try:
        state_dict = read_state_dict(path)
        model = CLIP(config, dtype=dtype, **model_kwargs)
        load_state_dict(model, state_dict)
        if all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights):
            return model, model
        full = CLIP(config)
        load_state_dict(full, state_dict)
    except ValueError as error:
        raise ValueError(
            f"The {source['filename']} downloaded for '{name}' from {source_url(source)} "
            f"cannot be used: {error}. Nothing was cached."
        ) from error
    return model, full


def _write_record(staged, source, digest, metadata):
    """Writes `source.json`: where the file came from, its digests, the hub's ETag."""
    record = {key: source.get(key) for key in ("repo_id", "filename", "revision")}
    record.update(
        endpoint=_endpoint(),
        sha256=digest,
        pinned=bool(source.get("sha256")),
        hub_etag=metadata.etag,
        hub_commit=metadata.commit_hash,
        files={file: sha256_file(os.path.join(staged, file)) for file in (CONFIG_FILE, WEIGHTS_FILE)},
    )
    with open(os.path.join(staged, SOURCE_FILE), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
        file.write("\n")


def _read_record(folder):
    """The `source.json` of a cache entry as a dict, or None if missing or unreadable."""
    try:
        with open(os.path.join(folder, SOURCE_FILE), encoding="utf-8") as file:
            record = json.load(file)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _is_valid_entry(folder):
    """True if every file recorded in the entry's `source.json` has its recorded SHA-256."""
    files = (_read_record(folder) or {}).get("files")
    if not isinstance(files, dict) or not files:
        return False
    try:
        return all(sha256_file(os.path.join(folder, file)) == sha for file, sha in files.items())
    except OSError:
        return False


def _publish(staged, folder):
    """Moves the finished folder `staged` to `folder`, never removing a valid entry.

    A valid entry already there (a concurrent download finished first) is kept
    and `staged` discarded; an invalid leftover is overwritten file by file,
    `source.json` last, so the folder never disappears for a reader.
    """
    try:
        os.rename(staged, folder)  # fails if `folder` exists and is not an empty folder
        return
    except OSError:
        if not os.path.lexists(folder):
            raise
    if _is_valid_entry(folder):
        return
    if not os.path.isdir(folder) or os.path.islink(folder):  # a stray file in the way
        os.remove(folder)
        os.rename(staged, folder)
        return
    for file in sorted(os.listdir(staged), key=lambda file: file == SOURCE_FILE):
        os.replace(os.path.join(staged, file), os.path.join(folder, file))


def _remove_stale_scratch(root):
    """Removes `.download-*` folders older than a day (left by killed downloads)."""
    oldest = time.time() - max(STALE_SCRATCH_AGE, download_timeout())
    for entry in os.scandir(root):
        with contextlib.suppress(OSError):  # a concurrent cleaner got there first
            if entry.name.startswith(SCRATCH_PREFIX) and entry.stat().st_mtime < oldest:
                shutil.rmtree(entry.path)


def _hub_still_serves(source, record):
    """False if the hub now reports another ETag than the cached entry's; True if offline."""
    try:
        etag = _hub_metadata(source, timeout=REVALIDATE_TIMEOUT).etag
    except Exception:  # offline, slow or unreachable hub: trust the cache
        return True
    return not etag or etag.lower() in (record.get("hub_etag"), record.get("sha256"))


def _evict(folder, record):
    """Moves the cache entry `folder` away, unless another process replaced it meanwhile."""
    with tempfile.TemporaryDirectory(dir=cache_root(), prefix=SCRATCH_PREFIX) as scratch:
        if _read_record(folder) == record:
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder, os.path.join(scratch, "evicted"))


def _load_cached(name, source, folder, dtype, model_kwargs):
    if not is_preset_folder(folder):
        return None
    record = _read_record(folder) or {}
    if not source.get("sha256") and not _hub_still_serves(source, record):
        warnings.warn(
            f"The hub no longer serves the {source['filename']} cached for '{name}' in "
            f"{folder} (SHA-256 {record.get('sha256')}); removing it and downloading again.",
            stacklevel=3,
        )
        _evict(folder, record)
        return None
    try:
        return CLIP.from_preset_folder(folder, dtype=dtype, **model_kwargs)
    except (ValueError, OSError) as error:
        warnings.warn(
            f"The cached weights of '{name}' in {folder} are unreadable ({error}); "
            "downloading them again.",
            stacklevel=3,
        )
        return None


def load_pretrained(name, config, dtype=None, **model_kwargs):
    """Returns the CLIP preset `name` with its pretrained weights.

    The first call downloads, verifies and converts the weights and caches the
    result under `cache_root()`; later calls read the cache without network
    (for an unpinned preset, after a short check that the hub still serves
    the same file, skipped when offline).

    Args:
        name: a built-in preset name with an entry in `weights.json`.
        config: the preset's `CLIPConfig`; the checkpoint must match it.
        dtype: optional dtype policy of the returned model. The cache always
            holds float32 weights.
        **model_kwargs: model options for `CLIP(...)`, e.g. `remat=True`.

    Raises:
        OSError: the file could not be downloaded (offline, server down...);
            `DownloadTimeoutError` (an `OSError`) past `download_timeout()`.
        ValueError: the file is corrupt, truncated, non-finite, not the file
            the hub describes, or does not fit `config`.
    """
    source = weight_sources()[name]
    folder = cache_folder(name, source)
    model = _load_cached(name, source, folder, dtype, model_kwargs)
    if model is not None:
        return model
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    _remove_stale_scratch(root)
    with tempfile.TemporaryDirectory(dir=root, prefix=SCRATCH_PREFIX) as scratch:
        path, metadata = _download(name, source, os.path.join(scratch, "download"))
        digest = _verify(name, source, path, metadata)
        model, full = _convert(name, source, config, path, dtype, model_kwargs)
        staged = os.path.join(scratch, "preset")
        full.save_to_preset(staged)
        _write_record(staged, source, digest, metadata)
        _publish(staged, folder)
    return model
