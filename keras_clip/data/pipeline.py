"""Shared tf.data stages: file listing and sharding, decode with skip counting, crop,
batched tokenization, and the per-epoch data-quality report.

The pipelines need TensorFlow but run under every Keras backend: iterate them with
``as_numpy_iterator()`` or pass them to ``model.fit``.

Skipped samples are counted in a ``DataQualityStats``: problems seen while reading
files in Python (a truncated or unreadable shard, a sample without image or caption)
are added directly; problems met inside the graph (an image TensorFlow cannot decode,
a path it cannot read, an empty caption) are counted with int64 ``tf.Variable``s —
one counter before the stage that may fail and one after ``ignore_errors``, their
difference being the number of samples dropped there.
"""

import collections
import glob
import logging
import os
import re
import threading

import keras

from keras_clip.preprocessing import preprocess_tf, random_resized_crop_tf

logger = logging.getLogger("keras_clip.data")

CATEGORIES = (
    "corrupt_image",       # TensorFlow could not decode (or crop) the image bytes
    "unreadable_file",     # an image path that could not be read
    "missing_caption",     # no caption file / empty caption
    "missing_image",       # a WebDataset sample without an image member
    "image_too_large",     # more pixels than the pipeline's max_pixels (not decoded)
    "unreadable_shard",    # a tar shard that could not be opened, or is corrupt
    "truncated_shard",     # a tar shard that ends before its end-of-archive blocks
)
# Counted per shard, not per sample: left out of the skipped-sample totals.
SHARD_CATEGORIES = ("unreadable_shard", "truncated_shard")


class DataQualityStats:
    """Counts of samples a pipeline skipped, per cause (see ``CATEGORIES``).

    Every pipeline of ``keras_clip.data`` returns a dataset with a
    ``quality_stats`` attribute holding one; ``DataQualityReport`` reads it.

    Example:
        >>> stats = DataQualityStats()
        >>> stats.add("missing_caption")
        >>> stats.counts()["missing_caption"]
        1
    """

    def __init__(self):
        import tensorflow as tf

        self._lock = threading.Lock()
        self._python = collections.Counter()
        names = ("seen_decode", "ok_decode", "seen_read", "ok_read", "missing_caption",
                 "image_too_large")

        def create():
            with tf.init_scope(), tf.device("/CPU:0"):
                self._vars = {n: tf.Variable(0, dtype=tf.int64, trainable=False,
                                             name=f"data_{n}") for n in names}

        if tf.distribute.has_strategy():
            # Plain host variables even inside `strategy.scope()` (a TPU or mirrored
            # variable cannot be captured by tf.data): strategy scopes are
            # thread-local, so create them in a fresh thread.
            thread = threading.Thread(target=create)
            thread.start()
            thread.join()
        else:
            create()

    def add(self, category, n=1):
        """Adds ``n`` skipped samples of ``category`` (thread-safe, Python side)."""
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}; received {category!r}.")
        with self._lock:
            self._python[category] += n

    def counter(self, name, increment):
        """In-graph: adds the int64 scalar ``increment`` to counter ``name``."""
        return self._vars[name].assign_add(increment)

    def counts(self):
        """``{category: skipped samples}`` since the last ``reset()``."""
        v = {k: int(var.numpy()) for k, var in self._vars.items()}
        with self._lock:
            out = {c: self._python.get(c, 0) for c in CATEGORIES}
        out["corrupt_image"] += v["seen_decode"] - v["ok_decode"]
        out["unreadable_file"] += v["seen_read"] - v["ok_read"]
        out["missing_caption"] += v["missing_caption"]
        out["image_too_large"] += v["image_too_large"]
        return out

    def total(self):
        """Total skipped samples (``SHARD_CATEGORIES`` count shards, not samples)."""
        return _samples(self.counts())

    def reset(self):
        """Sets every count back to zero."""
        for var in self._vars.values():
            var.assign(0)
        with self._lock:
            self._python.clear()

    def report(self, reset=True, where="epoch"):
        """Logs one warning with the counts if anything was skipped; returns the message.

        Example:
            >>> for batch in dataset: ...
            >>> dataset.quality_stats.report()
        """
        counts = self.counts()
        if reset:
            self.reset()
        if not any(counts.values()):
            return None
        detail = ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        msg = f"keras_clip.data: skipped {_samples(counts)} sample(s) this {where} ({detail})."
        logger.warning(msg)
        return msg


def _samples(counts):
    return sum(v for k, v in counts.items() if k not in SHARD_CATEGORIES)


class DataQualityReport(keras.callbacks.Callback):
    """Keras callback: one warning per epoch with the counts of skipped samples.

    Counts are reset when each epoch begins; ``history`` keeps one dict of
    counts per epoch. With a repeated dataset (``steps_per_epoch``), samples
    prefetched ahead count in the epoch that read them.

    Args:
        *sources: datasets returned by ``keras_clip.data`` (or ``DataQualityStats``).

    Example:
        >>> ds = webdataset_dataset("shards/*.tar", 224, 32)
        >>> model.fit(ds, epochs=3, callbacks=[DataQualityReport(ds)])
    """

    def __init__(self, *sources):
        super().__init__()
        self.stats = []
        for s in sources:
            stats = s if isinstance(s, DataQualityStats) else getattr(s, "quality_stats", None)
            if stats is None:
                raise ValueError(
                    "DataQualityReport expects datasets built by keras_clip.data or "
                    f"DataQualityStats objects; received {type(s).__name__}.")
            self.stats.append(stats)
        self.history = []

    def on_epoch_begin(self, epoch, logs=None):
        # Drops what earlier iterations counted (Keras' JAX and torch trainers
        # read a first batch from a separate iterator before training starts).
        for stats in self.stats:
            stats.reset()

    def on_epoch_end(self, epoch, logs=None):
        for stats in self.stats:
            counts = stats.counts()
            self.history.append(counts)
            stats.report(reset=True, where=f"epoch ({epoch + 1})")


# ----------------------------------------------------------------------------- files


def expand_braces(pattern):
    """Expands WebDataset brace ranges: ``"a-{000..002}.tar"`` -> 3 names.

    Example:
        >>> expand_braces("s-{0..2}.tar")
        ['s-0.tar', 's-1.tar', 's-2.tar']
    """
    m = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not m:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo) if lo.startswith("0") else 0
    out = []
    for i in range(int(lo), int(hi) + 1):
        out.extend(expand_braces(pattern[: m.start()] + str(i).zfill(width) + pattern[m.end():]))
    return out


def list_files(patterns, what="files"):
    """Sorted, de-duplicated files matching glob/brace ``patterns`` (str or list)."""
    import tensorflow as tf

    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    patterns = [os.fspath(p) for p in patterns]
    if not patterns:
        raise ValueError(f"expected at least one path or pattern for the {what}; received none.")
    files, missing = [], []
    for pattern in patterns:
        for p in expand_braces(pattern):
            if any(ch in p for ch in "*?["):
                files.extend(tf.io.gfile.glob(p) if "://" in p else glob.glob(p))
            elif tf.io.gfile.exists(p):
                files.append(p)
            else:
                missing.append(p)
    if missing and files:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ValueError(f"{len(missing)} of the {what} do not exist: {missing[:3]}{more}; "
                         "expected every listed path to exist.")
    files = sorted(set(files))
    if not files:
        raise ValueError(f"no {what} match {patterns}; expected existing paths or glob "
                         "patterns (e.g. 'shards/{00000..00009}.tar' or 'shards/*.tar').")
    return files


def shard_files(files, num_shards=1, index=0, input_context=None, what="files"):
    """The worker's part of ``files``: every ``num_shards``-th, starting at ``index``.

    ``input_context`` (a ``tf.distribute.InputContext``) overrides ``num_shards``
    and ``index`` with its input-pipeline count and id.

    Example:
        >>> shard_files(["a", "b", "c"], num_shards=2, index=1)
        ['b']
    """
    if input_context is not None:
        num_shards = input_context.num_input_pipelines
        index = input_context.input_pipeline_id
    if num_shards < 1 or not 0 <= index < num_shards:
        raise ValueError(f"expected num_shards >= 1 and 0 <= index < num_shards; received "
                         f"num_shards={num_shards}, index={index}.")
    if num_shards > len(files):
        raise ValueError(f"cannot split {len(files)} {what} among {num_shards} workers; "
                         f"expected at least {num_shards} {what}.")
    return list(files)[index::num_shards]


# -------------------------------------------------------------------- the pipeline

_DEFAULT_TOKENIZER = None


def resolve_tokenizer(tokenizer):
    """``tokenizer`` or, when None, ``keras_clip.CLIPTokenizer()``."""
    if tokenizer is not None:
        return tokenizer
    global _DEFAULT_TOKENIZER
    if _DEFAULT_TOKENIZER is None:
        from keras_clip.tokenizer import CLIPTokenizer

        _DEFAULT_TOKENIZER = CLIPTokenizer()
    return _DEFAULT_TOKENIZER


def _keep_flagged(ds):
    """Keeps the records whose ``"_keep"`` is true, then drops that key."""

    def strip_flag(record):
        record = dict(record)
        record.pop("_keep")
        return record

    return ds.filter(lambda r: r["_keep"]).map(strip_flag)


def drop_missing_captions(ds, stats):
    """Drops (and counts) records whose ``"caption"`` is empty once stripped."""
    import tensorflow as tf

    def count(record):
        # Invalid UTF-8 becomes U+FFFD rather than failing the tokenizer later.
        caption = tf.strings.unicode_transcode(record["caption"], "UTF-8", "UTF-8",
                                               errors="replace")
        empty = tf.equal(tf.strings.length(tf.strings.strip(caption)), 0)
        stats.counter("missing_caption", tf.cast(empty, tf.int64))
        return dict(record, caption=caption, _keep=tf.logical_not(empty))

    return _keep_flagged(ds.map(count))


def shuffle_and_repeat(ds, options, default_buffer, size=None):
    """Shuffles ``ds`` when training (a buffer of ``options.shuffle_buffer``, else
    ``default_buffer``, at most ``size``) and repeats it if ``options.repeat``."""
    buffer = default_buffer if options.shuffle_buffer is None else options.shuffle_buffer
    buffer = buffer if size is None else min(buffer, size)
    if options.training and buffer > 1:
        ds = ds.shuffle(buffer, seed=options.seed, reshuffle_each_iteration=True)
    return ds.repeat() if options.repeat else ds


def _pixel_count(image_bytes):
    """Width x height from the image header (PIL reads no pixels); 0 if unrecognised."""
    import io

    import numpy as np
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            width, height = image.size
    except Image.DecompressionBombError:  # over twice PIL's own limit
        return np.int64(np.iinfo(np.int64).max)
    except Exception:  # not an image PIL knows: decode_image decides (and counts)
        return np.int64(0)
    return np.int64(width * height)


def drop_large_images(ds, stats, max_pixels, num_parallel_calls):
    """Drops (and counts as ``image_too_large``) records whose ``"image_bytes"`` header
    declares more than ``max_pixels`` pixels, before anything decodes them."""
    import tensorflow as tf

    def measure(record):
        pixels = tf.numpy_function(_pixel_count, [record["image_bytes"]], tf.int64,
                                   stateful=False)
        too_large = pixels > max_pixels
        stats.counter("image_too_large", tf.cast(too_large, tf.int64))
        return dict(record, _keep=tf.logical_not(too_large))

    return _keep_flagged(ds.map(measure, num_parallel_calls=num_parallel_calls,
                                deterministic=True))


def guarded_map(ds, fn, stats, name, num_parallel_calls):
    """``ds.map(fn)`` in parallel with failing elements skipped and counted under ``name``."""
    import tensorflow as tf

    def seen(record):
        with tf.control_dependencies([stats.counter(f"seen_{name}", tf.constant(1, tf.int64))]):
            return tf.nest.map_structure(tf.identity, record)

    def ok(record):
        with tf.control_dependencies([stats.counter(f"ok_{name}", tf.constant(1, tf.int64))]):
            return tf.nest.map_structure(tf.identity, record)

    ds = ds.map(seen)
    ds = ds.map(fn, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.ignore_errors()
    return ds.map(ok)


def finish(ds, options, stats, decode=True, include_labels=False):
    """Decode (if ``decode``), crop, batch and tokenize records into model batches.

    Records are dicts with ``"caption"`` (tf.string) and either ``"image"`` (uint8
    HWC) or, with ``decode=True``, ``"image_bytes"`` (encoded jpg/png/webp/...).
    Undecodable images are skipped and counted in ``stats``; so are images whose
    header declares more than ``options.max_pixels`` pixels, before decoding.
    When ``options.sharded`` (the input was already split per worker),
    tf.distribute's auto-sharding is turned off so that it does not split it again.

    Args:
        ds: the records.
        options: a ``PipelineOptions``.
        stats: the ``DataQualityStats`` to count into.
        decode: the records hold encoded ``"image_bytes"``, not ``"image"``.
        include_labels: also batch the records' ``"label"`` as int32 ``"labels"``.

    Returns:
        A dataset of ``{"images": float32 (B, S, S, 3), "token_ids": int32 (B, 77)}``
        (plus ``"labels"`` when ``include_labels``), with ``quality_stats`` set.

    Example:
        >>> ds = finish(records, PipelineOptions(224, 32), DataQualityStats())
    """
    import tensorflow as tf

    parallel = options.parallel_calls
    if options.training:
        # One stateless seed per element; the stream is reproducible from `seed` yet
        # differs between epochs.
        randoms = tf.data.Dataset.random(seed=options.seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, randoms.batch(2)).map(
            lambda record, s: dict(record, _seed=s))
    load = _loader(options, decode)
    if decode and options.max_pixels is not None:
        ds = drop_large_images(ds, stats, options.max_pixels, parallel)
    if decode:
        ds = guarded_map(ds, load, stats, "decode", parallel)
    else:  # in-memory uint8 images: nothing to skip, and the cardinality stays known
        ds = ds.map(load, num_parallel_calls=parallel, deterministic=True)
    ds = ds.batch(options.batch_size, drop_remainder=options.drops_remainder,
                  num_parallel_calls=parallel, deterministic=True)
    ds = ds.map(_batch_tokenizer(options.tokenizer, include_labels),
                num_parallel_calls=parallel, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if options.sharded:
        off = tf.data.Options()
        policy = tf.data.experimental.AutoShardPolicy.OFF
        off.experimental_distribute.auto_shard_policy = policy
        ds = ds.with_options(off)
    ds.quality_stats = stats
    return ds


def _loader(options, decode):
    """record -> record with ``"images"`` float32 (S, S, 3), cropped as ``options`` say."""
    import tensorflow as tf

    size = options.image_size

    def load(record):
        record = dict(record)
        crop_seed = record.pop("_seed", None)
        if decode:
            image = tf.io.decode_image(record.pop("image_bytes"), channels=3,
                                       expand_animations=False)
        else:
            image = record.pop("image")
        image.set_shape((None, None, 3))
        if options.training:
            image = random_resized_crop_tf(image, size, scale=options.scale,
                                           ratio=options.ratio, seed=crop_seed,
                                           mean=options.mean, std=options.std)
        else:
            image = preprocess_tf(image, size, options.mean, options.std, options.resize_mode)
        record["images"] = tf.ensure_shape(tf.cast(image, tf.float32), (size, size, 3))
        return record

    return load


def _batch_tokenizer(tokenizer, include_labels):
    """batch -> ``{"images", "token_ids"}`` (+ ``"labels"``) with captions tokenized."""
    import tensorflow as tf

    tokenizer = resolve_tokenizer(tokenizer)

    def tokenize(batch):
        out = {"images": batch["images"],
               "token_ids": tf.cast(tokenizer(batch["caption"]), tf.int32)}
        if include_labels:
            out["labels"] = tf.cast(batch["label"], tf.int32)
        return out

    return tokenize
