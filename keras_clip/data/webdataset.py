"""WebDataset tar shards (img2dataset layout) as a tf.data pipeline.

A sample is the run of consecutive tar members sharing a key (the member path up
to the first dot of its file name): ``KEY.jpg|jpeg|png|webp|bmp|gif`` for the
image, ``KEY.txt`` for the caption, other members (``KEY.json``...) ignored.
Shards are read by Python generators (one per shard, several interleaved in
parallel); decoding, cropping and tokenization run in the tf.data graph.
"""

import os
import tarfile
import zlib

from keras_clip.data import pipeline

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")


def iterate_tar_samples(path, stats=None, caption_ext="txt", image_exts=IMAGE_EXTENSIONS):
    """Yields ``(key, image_bytes, caption_bytes)`` for the complete samples of one shard.

    Samples without an image or a caption, and a shard that cannot be opened or
    ends early, are skipped and counted in ``stats`` (a ``DataQualityStats``).

    Example:
        >>> for key, image, caption in iterate_tar_samples("shards/00000.tar"): ...
    """
    path = os.fsdecode(path)
    add = stats.add if stats is not None else (lambda *a, **k: None)

    def emit(group):
        if not group:
            return None
        image = next((group[e] for e in image_exts if e in group), None)
        if image is None:
            add("missing_image")
            return None
        if caption_ext not in group:
            add("missing_caption")
            return None
        return image, group[caption_ext]

    try:
        tar = tarfile.open(path, "r|*")
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        add("unreadable_shard")
        return
    key, group, reading = None, {}, False
    try:
        with tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, name = os.path.split(member.name)
                if name.startswith("."):
                    continue
                stem, _, ext = name.partition(".")
                member_key = os.path.join(folder, stem)
                if member_key != key:
                    sample = emit(group)
                    if sample is not None:
                        yield (key,) + sample
                    key, group = member_key, {}
                reading = True
                group[ext.lower()] = tar.extractfile(member).read()
                reading = False
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        # A truncated or corrupt shard: the samples before were already yielded;
        # the one being read is kept if its image and caption are complete.
        add("unreadable_shard")
        complete = any(e in group for e in image_exts) and caption_ext in group
        if complete:
            yield (key,) + emit(group)
        elif group or reading:
            add("unreadable_file")
        return
    sample = emit(group)
    if sample is not None:
        yield (key,) + sample


def webdataset_dataset(patterns, image_size, batch_size, tokenizer=None, training=True,
                       shuffle_buffer=1000, seed=None, num_parallel_calls=None,
                       cycle_length=4, num_shards=1, shard_index=0, input_context=None,
                       drop_remainder=None, repeat=False, caption_ext="txt",
                       scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), stats=None):
    """A ``tf.data`` pipeline over WebDataset shards yielding model batches.

    Args:
        patterns: shard path(s): globs or brace ranges (``"data/{00000..00099}.tar"``).
        image_size: output side S (random resized crop if ``training``, else
            center crop; both resize with antialiased bicubic and normalise).
        batch_size: per-pipeline batch size.
        tokenizer: callable on a ``(B,)`` tf.string tensor -> int ``(B, 77)``;
            default ``keras_clip.CLIPTokenizer()``.
        training: shuffle files and samples, random crops; else fixed order and
            center crops.
        shuffle_buffer: samples in the shuffle buffer (training only).
        seed: makes the order and crops reproducible (different every epoch).
        num_parallel_calls: parallel decodes (default ``tf.data.AUTOTUNE``).
        cycle_length: shards read at the same time.
        num_shards, shard_index: this worker's part of the shard files
            (every ``num_shards``-th file from ``shard_index``).
        input_context: a ``tf.distribute.InputContext``; overrides the two above
            (use with ``strategy.distribute_datasets_from_function``). When the
            shards are split here, tf.distribute's auto-sharding is turned off;
            multi-worker runs should split here (the generator-based reader
            cannot be auto-sharded by file).
        drop_remainder: drop the last partial batch; default ``training``.
        repeat: repeat forever (then pass ``steps_per_epoch`` to ``fit``).
        caption_ext: extension of the caption member.
        scale, ratio: random resized crop ranges.
        stats: a ``DataQualityStats`` to count into (default a new one).

    Returns:
        A dataset of ``{"images": float32 (B, S, S, 3), "token_ids": int32 (B, 77)}``
        with a ``quality_stats`` attribute (see ``DataQualityReport``).

    Example:
        >>> ds = webdataset_dataset("shards/*.tar", image_size=224, batch_size=32, seed=0)
        >>> model.fit(ds, epochs=2, callbacks=[DataQualityReport(ds)])
    """
    import tensorflow as tf

    pipeline.check_common(image_size, batch_size)
    files = pipeline.list_files(patterns, "WebDataset shards")
    files = pipeline.shard_files(files, num_shards, shard_index, input_context, "shards")
    stats = stats or pipeline.DataQualityStats()
    signature = (tf.TensorSpec((), tf.string),) * 3

    def generate(p):
        yield from iterate_tar_samples(p, stats, caption_ext)

    def read_shard(path):
        samples = tf.data.Dataset.from_generator(generate, args=(path,),
                                                 output_signature=signature)
        return samples.map(lambda key, image, caption: {
            "image_bytes": image, "caption": caption})

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(read_shard, cycle_length=min(cycle_length, len(files)), block_length=1,
                       num_parallel_calls=min(cycle_length, len(files)), deterministic=True)
    ds = pipeline.drop_missing_captions(ds, stats)
    if training and shuffle_buffer and shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return pipeline.finish(
        ds, image_size, batch_size, tokenizer=tokenizer, training=training, seed=seed,
        decode=True, num_parallel_calls=num_parallel_calls,
        drop_remainder=training if drop_remainder is None else drop_remainder,
        stats=stats, scale=scale, ratio=ratio,
        sharded=num_shards > 1 or input_context is not None)
