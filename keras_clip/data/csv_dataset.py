"""CSV/TSV files of (image path, caption) rows as a tf.data pipeline.

Like open_clip's ``--csv-img-key``/``--csv-caption-key``: one column holds the
image path, another the caption. The table is parsed once in Python (so bad
column names fail early with a clear message); images are read and decoded in
the tf.data graph, unreadable and undecodable ones skipped and counted.
"""

import csv
import io
import os

from keras_clip.data import pipeline
from keras_clip.data.options import make_options


def _read_text(path):
    """The UTF-8 text of the table file ``path``; ``ValueError`` for a folder or binary file."""
    import tensorflow as tf

    path = os.fspath(path)
    if tf.io.gfile.isdir(path):
        raise ValueError(f"{path} is a folder; expected a CSV/TSV file.")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a UTF-8 CSV/TSV table (byte {error.start} is "
                         f"{raw[error.start]:#04x}); is it a binary file?") from None
    if "\0" in text:
        raise ValueError(f"{path} holds NUL bytes (at character {text.index(chr(0))}); "
                         "expected a text CSV/TSV table, is it a binary file?")
    return text


def read_table(path, image_key="filepath", caption_key="title", sep=None, image_root=None):
    """Parses one CSV/TSV into ``(image_paths, captions)`` lists of str.

    Args:
        path: the file (local or any ``tf.io.gfile`` path).
        image_key, caption_key: column names of the image path and the caption.
        sep: the delimiter; ``None`` means tab for ``.tsv`` files, else comma.
        image_root: folder that relative image paths are resolved against;
            default the table's own folder.

    Example:
        >>> paths, captions = read_table("data.csv")
    """
    if sep is None:
        sep = "\t" if os.fspath(path).lower().endswith(".tsv") else ","
    reader = csv.DictReader(io.StringIO(_read_text(path)), delimiter=sep)
    try:
        columns = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as error:
        raise ValueError(f"{path} is not a readable CSV/TSV table ({error}).") from None
    missing = [k for k in (image_key, caption_key) if k not in columns]
    if missing:
        raise ValueError(
            f"{path}: column(s) {missing} not found; the header (split on {sep!r}) has "
            f"{columns}. Pass image_key=/caption_key= (or sep=) to match the file.")
    root = os.fspath(image_root) if image_root is not None else os.path.dirname(
        os.fspath(path))
    paths, captions = [], []
    for row in rows:
        p = (row.get(image_key) or "").strip()
        if p and not (os.path.isabs(p) or "://" in p):
            p = os.path.join(root, p)
        paths.append(p)
        captions.append(row.get(caption_key) or "")
    return paths, captions


def csv_dataset(path, image_size=None, batch_size=None, *, options=None,
                image_key="filepath", caption_key="title", sep=None, image_root=None,
                stats=None, **option_fields):
    """A ``tf.data`` pipeline over CSV/TSV tables of image paths and captions.

    Args:
        path: table file(s): a path, a glob, or a list of them.
        image_size, batch_size, options, stats, **option_fields: as in
            ``webdataset_dataset`` (``shuffle_buffer`` default 10000 rows; the
            rows are split among workers, every ``num_shards``-th row in table
            order).
        image_key, caption_key: column names (open_clip's defaults).
        sep: delimiter; ``None`` = tab for ``.tsv``, comma otherwise.
        image_root: folder for relative image paths (default: each table's folder).

    Returns:
        A dataset of ``{"images": float32 (B, S, S, 3), "token_ids": int32 (B, 77)}``
        with a ``quality_stats`` attribute.

    Example:
        >>> ds = csv_dataset("train.tsv", 224, 32, image_key="filepath", caption_key="title")
    """
    import tensorflow as tf

    options = make_options("csv_dataset", options, image_size, batch_size, option_fields)
    tables = pipeline.list_files(path, "CSV/TSV tables")
    paths, captions = [], []
    for table in tables:
        p, c = read_table(table, image_key, caption_key, sep, image_root)
        paths += p
        captions += c
    if not paths:
        raise ValueError(f"{tables} hold no rows; expected a header line and at least one "
                         "(image path, caption) row.")
    rows = pipeline.shard_files(list(zip(paths, captions)), options.num_shards,
                                options.shard_index, options.input_context, "rows")
    stats = stats or pipeline.DataQualityStats()
    ds = tf.data.Dataset.from_tensor_slices({"path": [r[0] for r in rows],
                                             "caption": [r[1] for r in rows]})
    ds = pipeline.drop_missing_captions(ds, stats)
    ds = pipeline.shuffle_and_repeat(ds, options, default_buffer=10000, size=len(rows))

    def read(record):
        return {"image_bytes": tf.io.read_file(record["path"]), "caption": record["caption"]}

    ds = pipeline.guarded_map(ds, read, stats, "read", options.parallel_calls)
    return pipeline.finish(ds, options, stats)
