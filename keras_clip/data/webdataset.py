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
from keras_clip.data.options import make_options

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


def webdataset_dataset(patterns, image_size=None, batch_size=None, *, options=None,
                       caption_ext="txt", image_exts=IMAGE_EXTENSIONS, cycle_length=4,
                       stats=None, **option_fields):
    """A ``tf.data`` pipeline over WebDataset shards yielding model batches.

    Args:
        patterns: shard path(s): globs or brace ranges (``"data/{00000..00099}.tar"``).
        image_size, batch_size: output side S and per-pipeline batch size
            (required unless ``options`` holds them).
        options: a ``PipelineOptions``; ``image_size``, ``batch_size`` and the
            keyword ``option_fields`` given here replace its fields.
        caption_ext, image_exts: extensions of the caption and image members.
        cycle_length: shards read at the same time.
        stats: a ``DataQualityStats`` to count into (default a new one).
        **option_fields: fields of ``PipelineOptions`` (``tokenizer``,
            ``training``, ``shuffle_buffer`` (default 1000), ``seed``,
            ``num_shards``, ``shard_index``, ``input_context``, ``repeat``,
            ``max_pixels``...). Shards are split among workers by file here;
            multi-worker runs should split here (the generator-based reader
            cannot be auto-sharded by file).

    Returns:
        A dataset of ``{"images": float32 (B, S, S, 3), "token_ids": int32 (B, 77)}``
        with a ``quality_stats`` attribute (see ``DataQualityReport``).

    Example:
        >>> ds = webdataset_dataset("shards/*.tar", image_size=224, batch_size=32, seed=0)
        >>> model.fit(ds, epochs=2, callbacks=[DataQualityReport(ds)])
    """
    import tensorflow as tf

    options = make_options("webdataset_dataset", options, image_size, batch_size,
                           option_fields)
    files = pipeline.list_files(patterns, "WebDataset shards")
    files = pipeline.shard_files(files, options.num_shards, options.shard_index,
                                 options.input_context, "shards")
    stats = stats or pipeline.DataQualityStats()
    signature = (tf.TensorSpec((), tf.string),) * 3

    def generate(p):
        yield from iterate_tar_samples(p, stats, caption_ext, image_exts)

    def read_shard(path):
        samples = tf.data.Dataset.from_generator(generate, args=(path,),
                                                 output_signature=signature)
        return samples.map(lambda key, image, caption: {
            "image_bytes": image, "caption": caption})

    ds = tf.data.Dataset.from_tensor_slices(files)
    if options.training:
        ds = ds.shuffle(len(files), seed=options.seed, reshuffle_each_iteration=True)
    cycle = min(cycle_length, len(files))
    ds = ds.interleave(read_shard, cycle_length=cycle, block_length=1,
                       num_parallel_calls=cycle, deterministic=True)
    ds = pipeline.drop_missing_captions(ds, stats)
    ds = pipeline.shuffle_and_repeat(ds, options, default_buffer=1000)
    return pipeline.finish(ds, options, stats)
