"""The pretrained-weights download path, for real, against a hub server on loopback.

A thread runs an `http.server` on 127.0.0.1 that answers `HEAD`/`GET
/{repo_id}/resolve/{revision}/{filename}` the way the Hugging Face Hub does
for a plain (non-Xet) file: `ETag`, `X-Repo-Commit`, `Content-Length`; it can
also announce another ETag than the body's (`etags`) or drip the body a byte
at a time (`drip_seconds`), as a tampered or hostile server would.
`HF_ENDPOINT` points the download (`huggingface_hub`'s HTTP session) at it. The served file
is a tiny random CLIP checkpoint in OpenAI key names, and the built-in name
`vit_b32` is pointed at it by patching `weight_sources` and `preset_config`.
"""

import hashlib
import http.server
import json
import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

import keras_clip
import keras_clip.presets
from keras_clip.config import CLIPConfig
from keras_clip.presets import download
from keras_clip.presets.openai_checkpoint import state_dict_from_model

NAME = "vit_b32"
REPO_ID = "keras-clip-tests/tiny-clip"
FILENAME = "open_clip_model.safetensors"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_config():
    return CLIPConfig.from_dict(
        {
            "name": NAME,
            "embed_dim": 32,
            "vision": {
                "type": "vit",
                "image_size": 32,
                "width": 64,
                "layers": 1,
                "patch_size": 16,
            },
            "text": {"width": 64, "layers": 1, "context_length": 77, "vocab_size": 512},
        }
    )


def checkpoint_bytes(config, seed):
    """A random CLIP checkpoint in OpenAI key names, as safetensors bytes."""
    from safetensors.numpy import save

    model = keras_clip.CLIP(config)
    rng = np.random.default_rng(seed)
    shapes = {key: value.shape for key, value in state_dict_from_model(model).items()}
    assert shapes["logit_scale"] == ()  # a scalar, as in OpenAI's checkpoints
    state_dict = {
        key: rng.normal(0.0, 0.5, shape).astype("float32") for key, shape in shapes.items()
    }
    return save(state_dict), state_dict


@pytest.fixture(scope="module")
def checkpoint():
    """`(bytes, state dict)` of the tiny checkpoint that fits `tiny_config()`."""
    return checkpoint_bytes(tiny_config(), seed=0)


class HubServer:
    """A minimal Hugging Face Hub on loopback serving files by `(repo, revision, name)`."""

    def __init__(self, files, commit=COMMIT):
        self.files = dict(files)  # {(repo_id, filename): bytes}
        self.etags = {}  # {(repo_id, filename): ETag sent instead of the body's SHA-256}
        self.drip_seconds = 0.0  # > 0: send the body one byte per interval
        self.stopped = threading.Event()
        self.commit = commit
        self.downloads = 0  # GET requests that returned a file
        self.requests = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                hub._answer(self, with_body=False)

            def do_GET(self):
                hub._answer(self, with_body=True)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, handler, with_body):
        self.requests.append((handler.command, handler.path))
        body, key = None, None
        path = handler.path.split("?")[0]
        if "/resolve/" in path:
            repo_id, rest = path.lstrip("/").split("/resolve/", 1)
            revision, _, filename = rest.partition("/")
            key = (repo_id, filename)
            if revision in ("main", self.commit):
                body = self.files.get(key)
        if body is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", "EntryNotFound")
            handler.send_header("X-Error-Message", "Entry not found")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        etag = self.etags.get(key) or hashlib.sha256(body).hexdigest()
        handler.send_header("ETag", f'"{etag}"')
        handler.send_header("X-Repo-Commit", self.commit)
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if with_body:
            self.downloads += 1
            if self.drip_seconds:
                self._drip(handler, body)
            else:
                handler.wfile.write(body)

    def _drip(self, handler, body):
        """Sends `body` a byte at a time; stops when the client hangs up or the hub stops."""
        for index in range(len(body)):
            if self.stopped.wait(self.drip_seconds):
                return
            try:
                handler.wfile.write(body[index : index + 1])
                handler.wfile.flush()
            except OSError:
                return

    def stop(self):
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def hub(monkeypatch, tmp_path, checkpoint):
    """The loopback hub serving the tiny checkpoint, with `vit_b32` pointed at it."""
    server = HubServer({(REPO_ID, FILENAME): checkpoint[0]})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("KERAS_CLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(keras_clip.presets, "preset_config", lambda name: tiny_config())
    point_at(monkeypatch, sha256=hashlib.sha256(checkpoint[0]).hexdigest())
    yield server
    server.stop()


def point_at(monkeypatch, sha256, revision=COMMIT, size=None):
    """Makes the built-in name `vit_b32` download `REPO_ID/FILENAME` at `revision`."""
    source = {
        "repo_id": REPO_ID,
        "filename": FILENAME,
        "revision": revision,
        "sha256": sha256,
        "size_bytes": size,
    }
    monkeypatch.setattr(download, "weight_sources", lambda: {NAME: source})
    return source


def assert_weights_equal(model, state_dict):
    converted = state_dict_from_model(model)
    assert sorted(converted) == sorted(state_dict)
    for key, value in state_dict.items():
        np.testing.assert_array_equal(converted[key], value, err_msg=key)


def cache_entries():
    root = os.environ["KERAS_CLIP_CACHE"]
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def test_downloads_converts_caches_then_loads_offline(hub, checkpoint):
    model = keras_clip.from_preset(NAME)
    assert hub.downloads == 1
    assert ("GET", f"/{REPO_ID}/resolve/{COMMIT}/{FILENAME}") in hub.requests
    assert_weights_equal(model, checkpoint[1])
    assert cache_entries() == [f"{NAME}-{COMMIT[:12]}"]  # no scratch folder left behind
    folder = os.path.join(os.environ["KERAS_CLIP_CACHE"], cache_entries()[0])
    with open(os.path.join(folder, download.SOURCE_FILE)) as file:
        provenance = json.load(file)
    assert provenance["sha256"] == hashlib.sha256(checkpoint[0]).hexdigest()
    assert provenance["pinned"] is True

    hub.stop()  # no network from here on
    again = keras_clip.from_preset(NAME)
    assert hub.downloads == 1
    assert_weights_equal(again, checkpoint[1])
    images = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again.encode_image(images)),
        keras.ops.convert_to_numpy(model.encode_image(images)),
        rtol=1e-6,
        atol=1e-6,
    )


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_CLIP_CACHE", str(tmp_path / "elsewhere"))
    assert download.cache_root() == str(tmp_path / "elsewhere")
    monkeypatch.delenv("KERAS_CLIP_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.cache_root() == os.path.join(str(tmp_path), ".cache", "keras_clip")


def test_cache_holds_float32_whatever_dtype_is_asked_first(hub, checkpoint):
    low = keras_clip.from_preset(NAME, dtype="bfloat16")
    assert keras.backend.standardize_dtype(low.text_encoder.weights[0].dtype) == "bfloat16"
    hub.stop()
    full = keras_clip.from_preset(NAME)
    assert_weights_equal(full, checkpoint[1])  # not rounded through bfloat16


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_corrupt_download_is_refused_and_nothing_cached(hub, checkpoint, damage):
    data = bytearray(checkpoint[0])
    if damage == "flipped":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    hub.files[(REPO_ID, FILENAME)] = bytes(data)
    expected = hashlib.sha256(checkpoint[0]).hexdigest()
    with pytest.raises(ValueError) as info:
        keras_clip.from_preset(NAME)
    message = str(info.value)
    assert FILENAME in message and expected in message and "Nothing was cached" in message
    assert hub.downloads == 1
    assert cache_entries() == []  # neither a converted folder nor the downloaded file

    hub.files[(REPO_ID, FILENAME)] = checkpoint[0]  # the next try succeeds
    assert_weights_equal(keras_clip.from_preset(NAME), checkpoint[1])


def test_unpinned_file_warns_and_is_still_checked(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    with pytest.warns(UserWarning, match="not pinned to a SHA-256"):
        model = keras_clip.from_preset(NAME)
    assert_weights_equal(model, checkpoint[1])
    assert cache_entries() == [f"{NAME}-main"]


def test_unpinned_truncated_file_is_refused(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    hub.files[(REPO_ID, FILENAME)] = checkpoint[0][: len(checkpoint[0]) // 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=f"{FILENAME} downloaded for '{NAME}'.*truncated"):
            keras_clip.from_preset(NAME)
    assert cache_entries() == []


def test_unpinned_file_of_another_architecture_is_refused(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    from safetensors.numpy import save

    other = dict(checkpoint[1])
    other["visual.conv1.weight"] = np.zeros((128, 3, 16, 16), "float32")  # a wider ViT
    hub.files[(REPO_ID, FILENAME)] = save(other)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="mis-shaped tensors: visual.conv1.weight"):
            keras_clip.from_preset(NAME)
    assert cache_entries() == []


def test_unreadable_cache_is_replaced(hub, checkpoint):
    keras_clip.from_preset(NAME)
    folder = os.path.join(os.environ["KERAS_CLIP_CACHE"], cache_entries()[0])
    with open(os.path.join(folder, "model.weights.h5"), "r+b") as file:
        file.truncate(100)
    with pytest.warns(UserWarning, match="unreadable"):
        model = keras_clip.from_preset(NAME)
    assert hub.downloads == 2
    assert_weights_equal(model, checkpoint[1])
    assert cache_entries() == [f"{NAME}-{COMMIT[:12]}"]


def test_server_down_names_file_url_and_local_copy(hub, monkeypatch):
    hub.stop()
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub's retry backoff
    with pytest.raises(OSError) as info:
        keras_clip.from_preset(NAME)
    message = str(info.value)
    assert FILENAME in message
    assert f"{hub.endpoint}/{REPO_ID}/resolve/{COMMIT}/{FILENAME}" in message
    assert f"keras_clip.from_preset('/path/to/{FILENAME}')" in message
    assert cache_entries() == []


def test_unreachable_host_fails_fast_with_one_attempt_and_one_message(hub, monkeypatch):
    """Nothing listens on the port: one connection attempt, then one OSError, no chain."""
    import socket
    import traceback

    hub.stop()
    port = int(hub.endpoint.rsplit(":", 1)[1])
    attempts, connect = [], socket.create_connection

    def counting(address, *args, **kwargs):
        stack = "".join(traceback.format_stack())
        if address[1] == port and "_detect_agent" not in stack:  # not the hub client's user-agent probe
            attempts.append(address)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("retried after a back-off"))
    with pytest.raises(OSError) as info:
        keras_clip.from_preset(NAME)
    assert len(attempts) == 1
    message = str(info.value)
    assert "\n" not in message and f"cannot reach {hub.endpoint}" in message
    assert "weights=None" in message and "--random-weights" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert cache_entries() == []


def test_offline_mode_names_file_url_and_local_copy(hub, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match=f"{FILENAME} from {hub.endpoint}/{REPO_ID}/resolve/"):
        keras_clip.from_preset(NAME)
    assert hub.downloads == 0
    assert cache_entries() == []


def test_missing_file_on_server_is_an_os_error(hub):
    hub.files.clear()
    with pytest.raises(OSError, match="EntryNotFound|404"):
        keras_clip.from_preset(NAME)
    assert cache_entries() == []


def test_local_copy_loads_without_network(tmp_path, checkpoint):
    path = tmp_path / FILENAME
    path.write_bytes(checkpoint[0])
    assert_weights_equal(keras_clip.from_preset(str(path)), checkpoint[1])


def test_truncated_local_safetensors_is_a_clear_error(tmp_path, checkpoint):
    path = tmp_path / FILENAME
    path.write_bytes(checkpoint[0][: len(checkpoint[0]) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file .truncated or corrupt"):
        keras_clip.from_preset(str(path))


def test_bundled_weight_sources_are_well_formed():
    sources = download.weight_sources()
    assert sorted(sources) == keras_clip.list_presets()
    openai = {"rn50", "rn101", "rn50x4", "rn50x16", "rn50x64", "vit_b32", "vit_b16", "vit_l14",
              "vit_l14_336"}
    assert openai <= set(sources)
    for name, source in sources.items():
        if name in openai:
            assert source["repo_id"].startswith("timm/") and source["repo_id"].endswith(".openai")
            assert "_clip" in source["repo_id"], name
            assert source["filename"] == FILENAME
        else:  # open_clip's own releases (LAION, DataComp, DFN, ...)
            assert source["repo_id"].count("/") == 1, name
            assert source["filename"] in (FILENAME, "open_clip_pytorch_model.bin"), name
        revision, sha256 = source["revision"], source["sha256"]
        assert revision == "main" or (len(revision) == 40 and int(revision, 16) >= 0), name
        if sha256 is not None:
            assert len(sha256) == 64 and sha256 == sha256.lower() and int(sha256, 16) >= 0, name
            assert revision != "main", f"{name}: a SHA-256 needs the revision it was read at"
            assert source["size_bytes"] is None or source["size_bytes"] > 0, name
    assert sources["vit_b32"]["sha256"].startswith("e6d1bd7789aa4519")
    assert sources["rn50x4"]["sha256"].startswith("fcd5a494550d0951")
    assert "resnet50x4_clip.openai" in sources["rn50x4"]["_source"]


# ---- unpinned presets: the hub's ETag, revalidation, non-finite files (issue 10, 2) -----------


def read_record():
    folder = os.path.join(os.environ["KERAS_CLIP_CACHE"], f"{NAME}-main")
    with open(os.path.join(folder, download.SOURCE_FILE)) as file:
        return json.load(file)


def load_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return keras_clip.from_preset(NAME)


def test_unpinned_entry_records_file_digest_and_hub_etag(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    load_quietly()
    record = read_record()
    digest = hashlib.sha256(checkpoint[0]).hexdigest()
    assert record["pinned"] is False
    assert record["sha256"] == digest and record["hub_etag"] == digest
    assert record["hub_commit"] == COMMIT
    assert sorted(record["files"]) == ["config.json", "model.weights.h5"]


def test_unpinned_file_differing_from_hub_etag_is_refused(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    hub.etags[(REPO_ID, FILENAME)] = "ab" * 32  # the hub vouches for another file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="not the file the hub describes.*Nothing was cached"):
            keras_clip.from_preset(NAME)
    assert cache_entries() == []


def test_unpinned_cache_is_evicted_when_hub_serves_another_file(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    tampered, _ = checkpoint_bytes(tiny_config(), seed=1)  # right shapes, wrong values
    hub.files[(REPO_ID, FILENAME)] = tampered
    load_quietly()
    assert read_record()["sha256"] == hashlib.sha256(tampered).hexdigest()

    hub.files[(REPO_ID, FILENAME)] = checkpoint[0]  # upstream fixed: another ETag
    with pytest.warns(UserWarning) as caught:  # eviction, then the "not pinned" warning
        model = keras_clip.from_preset(NAME)
    assert any("no longer serves" in str(warning.message) for warning in caught)
    assert hub.downloads == 2
    assert_weights_equal(model, checkpoint[1])
    assert read_record()["sha256"] == hashlib.sha256(checkpoint[0]).hexdigest()
    assert cache_entries() == [f"{NAME}-main"]

    assert_weights_equal(load_quietly(), checkpoint[1])  # the hub agrees now: no download
    assert hub.downloads == 2


def test_unpinned_cache_is_used_silently_offline(hub, monkeypatch, checkpoint):
    point_at(monkeypatch, sha256=None, revision="main")
    load_quietly()
    hub.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras_clip.from_preset(NAME)
    assert [str(w.message) for w in caught if NAME in str(w.message)] == []
    assert_weights_equal(model, checkpoint[1])
    assert hub.downloads == 1


def test_unpinned_non_finite_file_is_refused_and_not_cached(hub, monkeypatch, checkpoint):
    from safetensors.numpy import save

    point_at(monkeypatch, sha256=None, revision="main")
    poisoned = dict(checkpoint[1])
    poisoned["visual.proj"] = np.full_like(poisoned["visual.proj"], np.nan)
    hub.files[(REPO_ID, FILENAME)] = save(poisoned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="visual.proj.*Nothing was cached"):
            keras_clip.from_preset(NAME)
    assert cache_entries() == []


# ---- publishing, leftovers and deadlines (issue 10, 9) ---------------------------------------


def write_entry(folder, weights):
    """A fake complete cache entry (the files `_publish` looks at), digests recorded."""
    os.makedirs(folder)
    files = {"config.json": b"{}", "model.weights.h5": weights}
    for file, data in files.items():
        with open(os.path.join(folder, file), "wb") as handle:
            handle.write(data)
    digests = {file: hashlib.sha256(data).hexdigest() for file, data in files.items()}
    with open(os.path.join(folder, download.SOURCE_FILE), "w") as handle:
        json.dump({"files": digests}, handle)


def test_publish_never_hides_a_valid_entry_from_readers(tmp_path):
    folder = str(tmp_path / "entry")
    write_entry(folder, b"first")
    done = threading.Event()

    def read_until_done():
        reads, failures = 0, 0
        while not done.is_set() and reads < 200000:
            reads += 1
            try:
                for file in ("config.json", "model.weights.h5", download.SOURCE_FILE):
                    with open(os.path.join(folder, file), "rb") as handle:
                        handle.read()
            except OSError:
                failures += 1
        return reads, failures

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(read_until_done) for _ in range(3)]
        for index in range(150):
            staged = str(tmp_path / f"staged-{index}")
            write_entry(staged, b"later %d" % index)
            download._publish(staged, folder)
        done.set()
        results = [reader.result() for reader in readers]
    assert sum(reads for reads, _ in results) > 0
    assert [failures for _, failures in results] == [0, 0, 0]
    with open(os.path.join(folder, "model.weights.h5"), "rb") as handle:
        assert handle.read() == b"first"  # the valid entry was kept, the copies discarded


def test_publish_overwrites_an_invalid_leftover(tmp_path):
    folder = str(tmp_path / "entry")
    write_entry(folder, b"good")
    with open(os.path.join(folder, "model.weights.h5"), "wb") as handle:
        handle.write(b"truncat")  # no longer matches its recorded digest
    staged = str(tmp_path / "staged")
    write_entry(staged, b"fresh")
    download._publish(staged, folder)
    assert download._is_valid_entry(folder)
    with open(os.path.join(folder, "model.weights.h5"), "rb") as handle:
        assert handle.read() == b"fresh"


def test_stale_scratch_folders_are_removed_by_the_next_download(hub, checkpoint):
    root = os.environ["KERAS_CLIP_CACHE"]
    stale, fresh = os.path.join(root, ".download-killed"), os.path.join(root, ".download-busy")
    for folder in (stale, fresh):
        os.makedirs(os.path.join(folder, "download"))
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    keras_clip.from_preset(NAME)
    assert cache_entries() == [".download-busy", f"{NAME}-{COMMIT[:12]}"]


def test_dripping_server_hits_the_download_deadline(hub, monkeypatch):
    monkeypatch.setenv(download.TIMEOUT_VARIABLE, "2")
    hub.drip_seconds = 0.05  # the tiny checkpoint would take hours
    started = time.monotonic()
    with pytest.raises(download.DownloadTimeoutError) as info:
        keras_clip.from_preset(NAME)
    assert time.monotonic() - started < 30  # bounded, not the hours the drip would take
    message = str(info.value)
    assert "did not finish within 2 s" in message and download.TIMEOUT_VARIABLE in message
    assert isinstance(info.value, OSError)
    assert cache_entries() == []


@pytest.mark.parametrize("text", ["0", "-5", "soon", "nan", "inf"])
def test_download_timeout_must_be_positive_seconds(monkeypatch, text):
    monkeypatch.setenv(download.TIMEOUT_VARIABLE, text)
    with pytest.raises(ValueError, match=f"{download.TIMEOUT_VARIABLE} must be a positive number"):
        download.download_timeout()
    monkeypatch.setenv(download.TIMEOUT_VARIABLE, "90")
    assert download.download_timeout() == 90.0


# ------------------------------------------------- model options pass through from_preset


def _outputs(model):
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
    token_ids = rng.integers(1, 500, size=(2, 77)).astype("int32")
    return [np.asarray(keras.ops.convert_to_numpy(out), dtype="float32")
            for out in (model.encode_image(images), model.encode_text(token_ids))]


def _sources(tmp_path, checkpoint):
    """A checkpoint file and the preset folder of the same weights."""
    path = tmp_path / FILENAME
    path.write_bytes(checkpoint[0])
    folder = str(tmp_path / "preset")
    keras_clip.from_preset(str(path)).save_to_preset(folder)
    return {"checkpoint file": str(path), "preset folder": folder}


def test_remat_passes_through_every_path_source(tmp_path, checkpoint):
    for source, path in _sources(tmp_path, checkpoint).items():
        plain, remat = keras_clip.from_preset(path), keras_clip.from_preset(path, remat=True)
        assert remat.remat is True and plain.remat is False, source
        for expected, actual in zip(_outputs(plain), _outputs(remat)):
            np.testing.assert_array_equal(actual, expected, err_msg=source)


def test_remat_passes_through_a_downloaded_name(hub, checkpoint):
    fresh = keras_clip.from_preset(NAME, remat=True)  # download path
    cached = keras_clip.from_preset(NAME, remat=True)  # cache path
    assert hub.downloads == 1 and fresh.remat is True and cached.remat is True
    assert keras_clip.from_preset(NAME, weights=None, remat=True).remat is True
    assert_weights_equal(cached, checkpoint[1])  # the cache was written in float32
    for expected, actual in zip(_outputs(keras_clip.from_preset(NAME)), _outputs(fresh)):
        np.testing.assert_array_equal(actual, expected)


def test_low_precision_download_equals_the_cached_load(hub, monkeypatch):
    with monkeypatch.context() as patch:  # the first load casts on load: no reload from disk
        patch.setattr(keras_clip.CLIP, "from_preset_folder", None)
        fresh = keras_clip.from_preset(NAME, dtype="bfloat16")
    cached = keras_clip.from_preset(NAME, dtype="bfloat16")  # from the float32 cache
    assert hub.downloads == 1
    for a, b in zip(fresh.weights, cached.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    for expected, actual in zip(_outputs(cached), _outputs(fresh)):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("preset", [NAME, "no/such/file.safetensors"])
def test_unknown_model_option_is_a_clear_error_before_any_download(hub, preset):
    with pytest.raises(ValueError, match=r"Unknown model option\(s\) 'rematt' for from_preset; "
                                         r"expected any of: remat, .*name, trainable"):
        keras_clip.from_preset(preset, rematt=True)
    assert hub.downloads == 0
