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


class _EndNotingTarInfo(tarfile.TarInfo):
    """Notes on the archive why reading headers stopped (tarfile ends silently)."""

    @classmethod
    def fromtarfile(cls, archive):
        try:
            return super().fromtarfile(archive)
        except tarfile.HeaderError as error:
            archive.end_error = error
            raise


def _end_problem(tar):
    """How a tar stream whose members all read ended: None, or a skip category.

    A complete archive ends with two zero blocks; tarfile stops quietly at the
    first, at a cut between members or at a garbage header.
    """
    error = getattr(tar, "end_error", None)
    if isinstance(error, tarfile.EOFHeaderError):  # one zero block read: is the second there?
        second = tar.fileobj.read(tarfile.BLOCKSIZE)
        return None if second == tarfile.NUL * tarfile.BLOCKSIZE else "truncated_shard"
    if isinstance(error, tarfile.InvalidHeaderError):
        return "unreadable_shard"
    return "truncated_shard"  # the stream ended at or inside a header


def _at_end(tar):
    """True if nothing is left to read in the (decompressed) tar stream."""
    try:
        return tar.fileobj.read(1) == b""
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        return False


def iterate_tar_samples(path, stats=None, caption_ext="txt", image_exts=IMAGE_EXTENSIONS):
    """Yields ``(key, image_bytes, caption_bytes)`` for the complete samples of one shard.

    Samples without an image or a caption are skipped and counted in ``stats``
    (a ``DataQualityStats``); so is a shard that cannot be opened or is corrupt
    (``unreadable_shard``) or that ends before its end-of-archive blocks
    (``truncated_shard``: a cut shard, even one cut between two members).

    Example:
        >>> for key, image, caption in iterate_tar_samples("shards/00000.tar"): ...
    """
    path = os.fsdecode(path)
    add = stats.add if stats is not None else (lambda *a, **k: None)

    def complete(group):
        return caption_ext in group and any(e in group for e in image_exts)

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
        tar = tarfile.open(path, "r|*", tarinfo=_EndNotingTarInfo)
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        add("unreadable_shard")
        return
    key, group, reading = None, {}, False
    with tar:
        try:
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
            problem = _end_problem(tar)
        except (OSError, tarfile.TarError, EOFError, zlib.error):  # cut or corrupt in a member
            problem = "truncated_shard" if _at_end(tar) else "unreadable_shard"
    if problem:
        add(problem)
        # The shard's last sample is kept if complete; else it was lost to the cut.
        if not complete(group):
            if group or reading:
                add("unreadable_file")
            return
    sample = emit(group)
    if sample is not None:
        yield (key,) + sample


def webdataset_dataset(patterns, image_size, batch_size, tokenizer=None, training=True,
                       shuffle_buffer=1000, seed=None, num_parallel_calls=None,
                       cycle_length=4, num_shards=1, shard_index=0, input_context=None,
                       drop_remainder=None, repeat=False, caption_ext="txt",
                       scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), stats=None,
                       max_pixels=pipeline.DEFAULT_MAX_PIXELS):
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
        max_pixels: images whose header declares more pixels (width x height)
            are skipped undecoded and counted as ``image_too_large``; default
            ``DEFAULT_MAX_PIXELS`` (about 89.5 million, PIL's decompression-bomb
            threshold), None for no limit.

    Returns:
        A dataset of ``{"images": float32 (B, S, S, 3), "token_ids": int32 (B, 77)}``
        with a ``quality_stats`` attribute (see ``DataQualityReport``).

    Example:
        >>> ds = webdataset_dataset("shards/*.tar", image_size=224, batch_size=32, seed=0)
        >>> model.fit(ds, epochs=2, callbacks=[DataQualityReport(ds)])
    """
    import tensorflow as tf

    pipeline.check_common(image_size, batch_size)
    pipeline.check_max_pixels(max_pixels)
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
        sharded=num_shards > 1 or input_context is not None, max_pixels=max_pixels)
