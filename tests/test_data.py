"""keras_clip.data: synthetic dataset, WebDataset and CSV pipelines, skip counting.

The pipelines are tf.data (TensorFlow installed) and must work under every Keras
backend: run this file with KERAS_BACKEND=tensorflow, jax and torch.
"""

import dataclasses
import io
import json
import logging
import os
import re
import tarfile

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from keras_clip import data  # noqa: E402
from keras_clip.data import synthetic  # noqa: E402

S = 32


@pytest.fixture(scope="module")
def tokenizer():
    from keras_clip.tokenizer import CLIPTokenizer

    return CLIPTokenizer()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("wds")
    return data.write_webdataset(str(root), 24, shard_size=6, image_size=S, seed=3)


def _fingerprints(batches):
    """One float per image, unique enough to identify samples."""
    return [round(float(x), 3) for b in batches for x in b["images"].sum(axis=(1, 2, 3))]


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


# ------------------------------------------------------------------ synthetic


def test_synthetic_deterministic_by_seed():
    a = data.SyntheticShapes(S, seed=0).sample(12)
    b = data.SyntheticShapes(S, seed=0).sample(12)
    c = data.SyntheticShapes(S, seed=1).sample(12)
    assert a[0].shape == (12, S, S, 3) and a[0].dtype == np.uint8
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and list(a[2]) == list(b[2])
    assert not np.array_equal(a[0], c[0])
    # Random access: sample i does not depend on how it was asked for.
    tail = data.SyntheticShapes(S, seed=0).sample(4, start=8)
    np.testing.assert_array_equal(tail[0], a[0][8:])


def test_heldout_combinations_never_in_train():
    train = data.SyntheticShapes(S, seed=0, split="train")
    held = {f"{c} {s}" for c, s in data.HELDOUT_COMBOS}
    assert held.isdisjoint(train.classes)
    assert set(train.classes) | held == set(data.class_names("all"))
    # every colour and shape is still seen in training
    assert {c.split()[0] for c in train.classes} == set(data.COLORS)
    assert {c.split()[1] for c in train.classes} == set(data.SHAPES)
    for i in range(300):
        _, caption, label, meta = train.example(i)
        assert (meta["color"], meta["shape"]) not in data.HELDOUT_COMBOS
        assert train.classes[label] == f"{meta['color']} {meta['shape']}"
        assert meta["color"] in caption and meta["shape"] in caption
    heldout = data.SyntheticShapes(S, seed=0, split="heldout")
    _, _, labels = heldout.sample(50)
    assert {heldout.classes[i] for i in labels} <= held
    with pytest.raises(ValueError, match="split"):
        data.SyntheticShapes(S, split="test")


def test_synthetic_tf_dataset(tokenizer):
    ds = data.SyntheticShapes(S, seed=0).as_tf_dataset(
        8, tokenizer=tokenizer, num_samples=12, training=False, include_labels=True)
    assert int(ds.cardinality()) == 2  # known: Keras shows the epoch length
    batches = list(ds.as_numpy_iterator())
    assert [b["images"].shape for b in batches] == [(8, S, S, 3), (4, S, S, 3)]
    assert batches[0]["images"].dtype == np.float32
    assert batches[0]["token_ids"].dtype == np.int32
    _, captions, labels = data.SyntheticShapes(S, seed=0).sample(12)
    np.testing.assert_array_equal(np.concatenate([b["labels"] for b in batches]), labels)
    np.testing.assert_array_equal(
        np.concatenate([b["token_ids"] for b in batches]), tokenizer(captions))


# ----------------------------------------------------------------- webdataset


def test_webdataset_layout(shards):
    assert [os.path.basename(p) for p in shards] == [f"{i:05d}.tar" for i in range(4)]
    with tarfile.open(shards[1]) as tar:
        names = tar.getnames()
    assert names[:3] == ["000010000.jpg", "000010000.txt", "000010000.json"]
    assert len(names) == 18


def test_webdataset_roundtrip(shards, tokenizer):
    ds = data.webdataset_dataset(shards, S, 5, tokenizer=tokenizer, training=False,
                                 cycle_length=1)
    batches = list(ds.as_numpy_iterator())
    images = np.concatenate([b["images"] for b in batches])
    ids = np.concatenate([b["token_ids"] for b in batches])
    assert images.shape == (24, S, S, 3) and images.dtype == np.float32
    assert ids.shape == (24, 77) and ids.dtype == np.int32
    samples = [s for p in shards for s in data.iterate_tar_samples(p)]
    captions = [c.decode() for _, _, c in samples]
    np.testing.assert_array_equal(ids, tokenizer(captions))
    from keras_clip.preprocessing import center_crop_tf

    expected = center_crop_tf(tf.io.decode_image(samples[7][1], channels=3), S).numpy()
    np.testing.assert_allclose(images[7], expected, atol=1e-5)
    assert sum(ds.quality_stats.counts().values()) == 0


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_webdataset_png_webp(tmp_path, tokenizer, fmt):
    paths = data.write_webdataset(str(tmp_path), 4, shard_size=4, image_size=S,
                                  image_format=fmt)
    ds = data.webdataset_dataset(paths, 24, 4, tokenizer=tokenizer, training=True, seed=0)
    (batch,) = list(ds.as_numpy_iterator())
    assert batch["images"].shape == (4, 24, 24, 3)


def test_training_pipeline_deterministic_by_seed(shards, tokenizer):
    def run(seed, epochs=2):
        ds = data.webdataset_dataset(shards[:2], S, 4, tokenizer=tokenizer, seed=seed,
                                     shuffle_buffer=8)
        return [list(ds.as_numpy_iterator()) for _ in range(epochs)]

    a, b, c = run(0), run(0), run(1, epochs=1)
    assert len(a[0]) == 3  # drop_remainder: 12 / 4
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(x["images"], y["images"])
        np.testing.assert_array_equal(x["token_ids"], y["token_ids"])
    assert _fingerprints(a[0]) != _fingerprints(a[1])  # reshuffled and re-cropped
    assert _fingerprints(a[0]) != _fingerprints(c[0])


def test_sharding_splits_files_disjointly(shards, tokenizer):
    parts = [data.shard_files(shards, 2, i) for i in range(2)]
    assert set(parts[0]).isdisjoint(parts[1]) and sorted(parts[0] + parts[1]) == shards
    ctx = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=3)
    assert data.shard_files(shards, input_context=ctx) == [shards[3]]
    seen = []
    for i in range(2):
        ds = data.webdataset_dataset(shards, S, 4, tokenizer=tokenizer, training=False,
                                     num_shards=2, shard_index=i)
        seen.append(_fingerprints(ds.as_numpy_iterator()))
    assert len(seen[0]) == len(seen[1]) == 12
    assert set(seen[0]).isdisjoint(seen[1])
    with pytest.raises(ValueError, match="cannot split 4 shards among 5 workers"):
        data.shard_files(shards, 5, 0, what="shards")


@pytest.fixture(scope="module")
def bad_shards(tmp_path_factory):
    """6 good samples + 5 bad ones in a shard, a cut shard (2 of 4 left), a non-tar."""
    tmp_path = tmp_path_factory.mktemp("bad")
    gen = data.SyntheticShapes(S, seed=5)
    good = []
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for i in range(6):
            image, caption, _, _ = gen.example(i)
            jpg = synthetic._encode(image, "JPEG", 90)
            _add(tar, f"good{i}.jpg", jpg)
            if i == 1:
                caption = caption + " \xff"  # invalid UTF-8 is replaced, not fatal
            good.append(caption)
            _add(tar, f"good{i}.txt", caption.encode("latin-1"))
            if i == 0:
                _add(tar, "corrupt.jpg", b"\xff\xd8\xff\xe0 this is not a jpeg")
                _add(tar, "corrupt.txt", b"a corrupt image")
                _add(tar, "trunc.jpg", jpg[: len(jpg) // 2])
                _add(tar, "trunc.txt", b"a truncated image")
                _add(tar, "nocap.jpg", jpg)
                _add(tar, "nocap.json", b"{}")
                _add(tar, "noimg.txt", b"a caption without image")
                _add(tar, "empty.jpg", jpg)
                _add(tar, "empty.txt", b"  \n")
    # A second shard cut in the middle of its third sample.
    data.write_webdataset(str(tmp_path / "w"), 4, shard_size=4, image_size=S)
    raw = open(tmp_path / "w" / "00000.tar", "rb").read()
    with tarfile.open(tmp_path / "w" / "00000.tar") as t:
        third = t.getmembers()[6]
    (tmp_path / "00001.tar").write_bytes(raw[: third.offset_data + 100])
    (tmp_path / "00002.tar").write_bytes(b"not a tar file at all")
    return tmp_path, good


BAD_COUNTS = {"corrupt_image": 2, "unreadable_file": 1, "missing_caption": 2,
              "missing_image": 1, "image_too_large": 0, "unreadable_shard": 1,
              "truncated_shard": 1}


def test_bad_samples_skipped_and_counted(bad_shards, tokenizer, caplog):
    tmp_path, good = bad_shards
    ds = data.webdataset_dataset(str(tmp_path / "*.tar"), S, 4, tokenizer=tokenizer,
                                 training=False)
    report = data.DataQualityReport(ds)
    expected = BAD_COUNTS
    for epoch in range(2):
        ids = np.concatenate([b["token_ids"] for b in ds.as_numpy_iterator()])
        assert ids.shape == (8, 77)  # 6 good + the 2 complete samples of the cut shard
        with caplog.at_level(logging.WARNING, logger="keras_clip.data"):
            caplog.clear()
            report.on_epoch_end(epoch)
        assert report.history[-1] == expected
        (record,) = caplog.records
        assert "skipped 6 sample(s)" in record.getMessage()
    assert sum(ds.quality_stats.counts().values()) == 0  # reset after each report
    good_ids = tokenizer([g.replace("\xff", "\ufffd") for g in good])
    assert all(any((row == g).all() for row in ids) for g in good_ids)


def test_fit_skips_bad_samples_and_warns_each_epoch(bad_shards, tokenizer, caplog):
    import keras

    class Probe(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            ids = keras.ops.cast(x["token_ids"][:, :1], "float32")
            return self.dense(keras.ops.mean(x["images"], axis=(1, 2))) + 0.0 * ids

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            return keras.ops.mean(y_pred**2)

    tmp_path, _ = bad_shards
    ds = data.webdataset_dataset(str(tmp_path / "*.tar"), S, 4, tokenizer=tokenizer, seed=0)
    model = Probe()
    model.compile(optimizer="sgd")
    report = data.DataQualityReport(ds)
    with caplog.at_level(logging.WARNING, logger="keras_clip.data"):
        history = model.fit(ds, epochs=2, callbacks=[report], verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2
    assert report.history == [BAD_COUNTS, BAD_COUNTS]
    assert len([r for r in caplog.records if r.name == "keras_clip.data"]) == 2


class _Counts:
    def __init__(self):
        self.counts = {}

    def add(self, category, n=1):
        self.counts[category] = self.counts.get(category, 0) + n


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory):
    """(bytes of a 4-sample shard, its members); 3 members (jpg, txt, json) per sample."""
    root = tmp_path_factory.mktemp("one")
    (path,) = data.write_webdataset(str(root), 4, shard_size=4, image_size=S)
    with tarfile.open(path) as tar:
        return open(path, "rb").read(), tar.getmembers()


@pytest.mark.parametrize("cut, kept, counts", [
    ("sample_header", 2, {"truncated_shard": 1}),          # before sample 2's first header
    ("member_header", 2, {"truncated_shard": 1, "unreadable_file": 1}),  # sample 2 half read
    ("end_of_archive", 4, {"truncated_shard": 1}),          # all members, no zero blocks
    ("one_zero_block", 4, {"truncated_shard": 1}),
    ("complete", 4, {}),
])
def test_shard_cut_at_a_header_boundary_is_counted(one_shard, tmp_path, cut, kept, counts):
    raw, members = one_shard
    last = members[-1]
    end = last.offset_data + -(-last.size // 512) * 512
    stop = {"sample_header": members[6].offset, "member_header": members[7].offset,
            "end_of_archive": end, "one_zero_block": end + 512, "complete": end + 1024}[cut]
    shard = tmp_path / "cut.tar"
    shard.write_bytes(raw[:stop])
    stats = _Counts()
    keys = [key for key, _, _ in data.iterate_tar_samples(str(shard), stats)]
    assert keys == [f"{i:09d}" for i in range(kept)]
    assert stats.counts == counts


def test_garbage_after_the_last_member_is_an_unreadable_shard(one_shard, tmp_path):
    raw, members = one_shard
    shard = tmp_path / "garbage.tar"
    shard.write_bytes(raw[:members[6].offset] + b"x" * 2048)
    stats = _Counts()
    assert len(list(data.iterate_tar_samples(str(shard), stats))) == 2
    assert stats.counts == {"unreadable_shard": 1}


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_images_over_the_pixel_limit_are_skipped_and_counted(tmp_path, tokenizer):
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for i, side in enumerate((40, 100, 64, 101)):
            _add(tar, f"s{i}.png", _png(side, side))
            _add(tar, f"s{i}.txt", f"a {side} pixel square".encode())
    ds = data.webdataset_dataset(str(tmp_path / "00000.tar"), S, 8, tokenizer=tokenizer,
                                 training=False, max_pixels=64 * 64)
    (batch,) = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(
        batch["token_ids"], tokenizer(["a 40 pixel square", "a 64 pixel square"]))
    counts = ds.quality_stats.counts()
    assert counts["image_too_large"] == 2 and counts["corrupt_image"] == 0
    report = ds.quality_stats.report()
    assert "skipped 2 sample(s)" in report and "image_too_large=2" in report
    unlimited = data.webdataset_dataset(str(tmp_path / "00000.tar"), S, 8,
                                        tokenizer=tokenizer, training=False, max_pixels=None)
    assert next(unlimited.as_numpy_iterator())["images"].shape[0] == 4
    with pytest.raises(ValueError,
                       match=r"max_pixels must be an int >= 1 or None; received 0\."):
        data.webdataset_dataset(str(tmp_path / "00000.tar"), S, 8, max_pixels=0)


def test_csv_images_over_the_pixel_limit_are_skipped_and_counted(tmp_path, tokenizer):
    (tmp_path / "small.png").write_bytes(_png(50, 50))
    (tmp_path / "huge.png").write_bytes(_png(100, 100))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "t.csv").write_text("filepath,title\nsmall.png,small\nhuge.png,huge\n"
                                    "bad.png,bad\n")
    ds = data.csv_dataset(str(tmp_path / "t.csv"), S, 8, tokenizer=tokenizer,
                          training=True, seed=0, drop_remainder=False, max_pixels=64 * 64)
    (batch,) = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(batch["token_ids"], tokenizer(["small"]))
    counts = ds.quality_stats.counts()
    assert counts["image_too_large"] == 1 and counts["corrupt_image"] == 1


def test_webdataset_errors(tmp_path):
    with pytest.raises(ValueError, match="no WebDataset shards match"):
        data.webdataset_dataset(str(tmp_path / "*.tar"), S, 4, tokenizer=lambda x: x)
    with pytest.raises(ValueError, match=r"1 of the WebDataset shards do not exist"):
        data.webdataset_dataset([str(tmp_path / "a.tar"), __file__], S, 4,
                                tokenizer=lambda x: x)
    with pytest.raises(ValueError, match=r"image_size must be an int >= 1; received 0\."):
        data.webdataset_dataset("x.tar", 0, 4)
    assert data.expand_braces("a/{08..10}.tar") == ["a/08.tar", "a/09.tar", "a/10.tar"]


# -------------------------------------------------------------------- options


@pytest.mark.parametrize("field, value, message", [
    ("image_size", 0, "image_size must be an int >= 1; received 0."),
    ("batch_size", True, "batch_size must be an int >= 1; received True."),
    ("shuffle_buffer", -1, "shuffle_buffer must be an int >= 0 or None; received -1."),
    ("seed", 1.5, "seed must be an int or None; received 1.5."),
    ("num_shards", 0, "num_shards must be an int >= 1; received 0."),
    ("shard_index", 1, "shard_index must be < num_shards (1); received 1."),
    ("num_parallel_calls", 0, "num_parallel_calls must be an int >= 1 or None; received 0."),
    ("training", "yes", "training must be True or False; received 'yes'."),
    ("drop_remainder", 1, "drop_remainder must be True or False or None; received 1."),
    ("repeat", None, "repeat must be True or False; received None."),
    ("tokenizer", 5, "tokenizer must be callable on tf.string tensors; received int."),
    ("scale", (0.5, 1.5), "scale must be a pair 0 < low <= high <= 1.0; received (0.5, 1.5)."),
    ("ratio", (2.0, 1.0), "ratio must be a pair 0 < low <= high; received (2.0, 1.0)."),
    ("ratio", "ab", "ratio must be a pair 0 < low <= high; received 'ab'."),
    ("max_pixels", 0, "max_pixels must be an int >= 1 or None; received 0."),
])
def test_pipeline_options_name_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        data.PipelineOptions(**{"image_size": S, "batch_size": 4, field: value})


def test_pipeline_options_defaults_and_resolved_values():
    options = data.PipelineOptions(S, 4, num_parallel_calls=tf.data.AUTOTUNE)
    assert options.drops_remainder and not options.sharded
    default = data.PipelineOptions(S, 4)
    assert options.parallel_calls == default.parallel_calls == tf.data.AUTOTUNE
    assert options.max_pixels == data.DEFAULT_MAX_PIXELS == 89_478_485
    evaluation = dataclasses.replace(options, training=False, num_shards=2)
    assert not evaluation.drops_remainder and evaluation.sharded
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 8
    with pytest.raises(ValueError, match="shard_index must be < num_shards"):
        dataclasses.replace(evaluation, shard_index=2)  # replace checks again


def test_options_object_equals_keyword_arguments(shards, tokenizer, tmp_path):
    options = data.PipelineOptions(S, 4, tokenizer=tokenizer, seed=0, shuffle_buffer=8)
    by_keywords = data.webdataset_dataset(shards[:2], S, 4, tokenizer=tokenizer, seed=0,
                                          shuffle_buffer=8)
    by_options = data.webdataset_dataset(shards[:2], options=options)
    assert _fingerprints(by_options.as_numpy_iterator()) == _fingerprints(
        by_keywords.as_numpy_iterator())
    # Keywords replace the object's fields: image size, and training -> center crops.
    center = data.webdataset_dataset(shards[:1], 24, options=options, training=False)
    batches = list(center.as_numpy_iterator())
    assert [b["images"].shape for b in batches] == [(4, 24, 24, 3), (2, 24, 24, 3)]
    table = data.write_csv(str(tmp_path), 3, image_size=S)
    (batch,) = data.csv_dataset(table, options=options, batch_size=3).as_numpy_iterator()
    assert batch["images"].shape == (3, S, S, 3)


def test_unknown_or_wrong_options_are_one_clear_error(shards):
    with pytest.raises(ValueError, match=r"webdataset_dataset\(\) got unknown option\(s\) "
                                         r"\['shuffle_bufer'\]; expected fields of "
                                         r"keras_clip.data.PipelineOptions: \['batch_size'"):
        data.webdataset_dataset(shards, S, 4, shuffle_bufer=8)
    with pytest.raises(ValueError,
                       match=r"csv_dataset\(\) got unknown option\(s\) \['crop'\]"):
        data.csv_dataset("t.csv", S, 4, crop=True)
    with pytest.raises(ValueError, match="options must be a keras_clip.data.PipelineOptions "
                                         "or None; received dict"):
        data.webdataset_dataset(shards, options={"image_size": S, "batch_size": 4})
    with pytest.raises(ValueError, match=r"^image_size must be an int >= 1; received None\.$"):
        data.webdataset_dataset(shards, batch_size=4)


# ------------------------------------------------------------------------ CSV


def test_csv_roundtrip_and_tsv(tmp_path, tokenizer):
    path = data.write_csv(str(tmp_path / "c"), 10, image_size=S, seed=2)
    ds = data.csv_dataset(path, S, 4, tokenizer=tokenizer, training=False)
    batches = list(ds.as_numpy_iterator())
    assert [b["images"].shape for b in batches] == [(4, S, S, 3)] * 2 + [(2, S, S, 3)]
    _, captions, _ = data.SyntheticShapes(S, seed=2).sample(10)
    np.testing.assert_array_equal(
        np.concatenate([b["token_ids"] for b in batches]), tokenizer(captions))
    tsv = data.write_csv(str(tmp_path / "t"), 6, image_size=S, sep="\t",
                         image_key="img", caption_key="cap")
    assert tsv.endswith(".tsv")
    ds = data.csv_dataset(tsv, S, 6, tokenizer=tokenizer, image_key="img",
                          caption_key="cap", seed=0)
    (batch,) = list(ds.as_numpy_iterator())
    assert batch["images"].shape == (6, S, S, 3) and batch["token_ids"].shape == (6, 77)


def test_csv_bad_rows_skipped_and_counted(tmp_path, tokenizer):
    path = data.write_csv(str(tmp_path), 5, image_size=S)
    (tmp_path / "images" / "bad.jpg").write_bytes(b"garbage")
    with open(path, "a") as f:
        f.write("images/missing.jpg,a missing file,0\n")
        f.write("images/bad.jpg,a corrupt file,0\n")
        f.write("images/000000001.jpg,,0\n")
        f.write(",no path,0\n")
    ds = data.csv_dataset(path, S, 16, tokenizer=tokenizer, training=False)
    (batch,) = list(ds.as_numpy_iterator())
    assert batch["images"].shape == (5, S, S, 3)
    counts = ds.quality_stats.counts()
    assert counts["unreadable_file"] == 2 and counts["corrupt_image"] == 1
    assert counts["missing_caption"] == 1


def test_csv_errors(tmp_path):
    path = data.write_csv(str(tmp_path), 2, image_size=S)
    with pytest.raises(ValueError, match=r"column\(s\) \['path'\] not found.*'filepath'"):
        data.csv_dataset(path, S, 2, tokenizer=lambda x: x, image_key="path")
    empty = tmp_path / "empty.csv"
    empty.write_text("filepath,title\n")
    with pytest.raises(ValueError, match="hold no rows"):
        data.csv_dataset(str(empty), S, 2, tokenizer=lambda x: x)
    with pytest.raises(ValueError, match="no CSV/TSV tables match"):
        data.csv_dataset(str(tmp_path / "nope.csv"), S, 2, tokenizer=lambda x: x)


def test_csv_folder_or_binary_table_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=f"{re.escape(str(tmp_path))} is a folder; expected a "
                                         "CSV/TSV file"):
        data.csv_dataset(str(tmp_path), S, 2, tokenizer=lambda x: x)
    png = tmp_path / "table.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"table.csv is not a UTF-8 CSV/TSV table \(byte 0 "
                                         r"is 0x89\)"):
        data.read_table(str(png))
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"filepath,title\na.jpg,x\x00y\n")
    with pytest.raises(ValueError, match="nul.csv holds NUL bytes"):
        data.read_table(str(nul))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("filepath,title\na.jpg,a caf\u00e9\n".encode("utf-8-sig"))
    assert data.read_table(str(bom)) == ([str(tmp_path / "a.jpg")], ["a caf\u00e9"])


def test_csv_sharding_by_rows(tmp_path, tokenizer):
    path = data.write_csv(str(tmp_path), 8, image_size=S)
    prints = []
    for i in range(2):
        ds = data.csv_dataset(path, S, 8, tokenizer=tokenizer, training=False,
                              num_shards=2, shard_index=i)
        prints.append(_fingerprints(ds.as_numpy_iterator()))
    assert len(prints[0]) == len(prints[1]) == 4 and set(prints[0]).isdisjoint(prints[1])


def test_json_metadata_written(shards):
    with tarfile.open(shards[0]) as tar:
        meta = json.load(tar.extractfile("000000003.json"))
        caption = tar.extractfile("000000003.txt").read().decode()
    assert meta["caption"] == caption and meta["key"] == "000000003"
    assert meta["class_name"] == f"{meta['color']} {meta['shape']}"


def test_counters_are_host_variables_inside_a_strategy_scope(bad_shards, tokenizer):
    tmp_path, _ = bad_shards
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        ds = data.webdataset_dataset(str(tmp_path / "*.tar"), S, 4, tokenizer=tokenizer,
                                     training=False)
    assert all(type(v).__name__ == "ResourceVariable"
               for v in ds.quality_stats._vars.values())
    n = sum(int(b["images"].shape[0])
            for b in strategy.experimental_distribute_dataset(ds))
    assert n == 8 and ds.quality_stats.counts() == BAD_COUNTS


# ------------------------------------------------------ the weights' preprocessing

SQUASH_HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "resize_mode": "squash"}


def test_eval_pipeline_uses_the_models_preprocessing(shards, tokenizer):
    import keras_clip
    from keras_clip.config import PreprocessingConfig
    from tests.conftest import tiny_config

    config = dataclasses.replace(tiny_config("vit"), preprocessing=PreprocessingConfig(**SQUASH_HALF))
    options = data.PipelineOptions.for_model(config, 5, tokenizer=tokenizer, training=False)
    assert (options.image_size, options.mean, options.resize_mode) == (32, (0.5,) * 3, "squash")
    ds = data.webdataset_dataset(shards, options=options, cycle_length=1)
    images = np.concatenate([b["images"] for b in ds.as_numpy_iterator()])
    samples = [s for p in shards for s in data.iterate_tar_samples(p)]
    decoded = tf.io.decode_image(samples[7][1], channels=3).numpy()  # the pipeline's decoder
    expected = keras_clip.ImagePreprocessor(32, **SQUASH_HALF)(decoded)[0]
    np.testing.assert_allclose(images[7], expected, atol=1e-4)


def test_training_crops_use_the_options_mean_and_std(shards, tokenizer):
    from keras_clip.preprocessing import MEAN, STD

    def first_batch(**fields):
        ds = data.webdataset_dataset(shards, S, 4, tokenizer=tokenizer, training=True, seed=1,
                                     cycle_length=1, **fields)
        return next(ds.as_numpy_iterator())["images"]

    openai = first_batch()
    half = first_batch(mean=(0.5,) * 3, std=(0.5,) * 3)
    pixels = openai * np.asarray(STD, np.float32) + np.asarray(MEAN, np.float32)  # x / 255
    np.testing.assert_allclose(half, (pixels - 0.5) / 0.5, atol=1e-5)


def test_pipeline_options_refuse_bad_preprocessing():
    with pytest.raises(ValueError, match="resize_mode"):
        data.PipelineOptions(image_size=S, batch_size=2, resize_mode="stretch")
    with pytest.raises(ValueError, match="std"):
        data.PipelineOptions(image_size=S, batch_size=2, std=(0.5, 0.0, 0.5))
