"""Evaluation data in memory: labelled images and paired image-caption sets.

- ``image_folder``: a folder with one sub-folder per class (torchvision's
  ``ImageFolder`` layout) -> ``ClassificationData``.
- ``csv_pairs`` / ``webdataset_pairs``: the tables and tar shards that
  ``keras_clip.data`` trains on -> ``PairedData`` (rows sharing an image path
  become one image with several captions).
- ``synthetic_classification`` / ``synthetic_pairs``: the bundled synthetic
  shapes (``keras_clip.data.SyntheticShapes``).

Images are preprocessed with ``keras_clip.ImagePreprocessor`` (PIL-exact:
bicubic shortest-side resize, center crop, CLIP mean/std) into float32
``(N, S, S, 3)`` held in memory; use ``max_samples`` / ``max_per_class`` for a
subset, or stream with the ``keras_clip.data`` pipelines (``training=False``)
and ``embed_dataset`` instead.

Example:
    >>> data = image_folder("imagenette/val", image_size=224)
    >>> data.images.shape, data.class_names[:2]
    ((3925, 224, 224, 3), ['chain saw', 'church'])
"""

import dataclasses
import io
import json
import os
import warnings
from typing import List, Optional

import numpy as np

from keras_clip.evaluation.features import progress
from keras_clip.preprocessing.rules import check_size, model_options

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclasses.dataclass
class ClassificationData:
    """Labelled images: ``images`` float32 ``(N, S, S, 3)`` preprocessed,
    ``labels`` int32 ``(N,)`` indexing ``class_names``, and the source ``paths``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: List[str]
    paths: Optional[List[str]] = None

    def __len__(self):
        return len(self.labels)


@dataclasses.dataclass
class PairedData:
    """Images and captions: caption ``j`` describes image ``image_index[j]``.

    ``images`` float32 ``(N_images, S, S, 3)``, ``captions`` list of
    ``N_texts`` str, ``image_index`` int32 ``(N_texts,)``, optional ``labels``
    int32 ``(N_images,)`` (and ``class_names``) and ``paths``.
    """

    images: np.ndarray
    captions: List[str]
    image_index: np.ndarray
    labels: Optional[np.ndarray] = None
    class_names: Optional[List[str]] = None
    paths: Optional[List[str]] = None

    def __len__(self):
        return len(self.images)


def _check_limit(value, name):
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"{name} must be None or a positive int; received {value!r}.")
    return value


def _preprocess_all(loaders, options, batch_size=64, verbose=False, desc="images"):
    """Runs ``loaders`` (callables -> PIL image, or raising) through ImagePreprocessor
    with ``options`` (``rules.model_options``).

    Returns ``(images (N, S, S, 3), kept indices)``; unreadable images are
    skipped with one warning.
    """
    from keras_clip.preprocessing import preprocess_numpy

    size = options["image_size"]
    out = np.empty((len(loaders), size, size, 3), np.float32)
    kept, failed, pending = [], [], []

    def flush():
        if pending:
            out[len(kept):len(kept) + len(pending)] = preprocess_numpy(
                [image for _, image in pending], **options)
            kept.extend(i for i, _ in pending)
            pending.clear()

    for i, load in enumerate(progress(loaders, len(loaders), desc, verbose)):
        try:
            image = load()
            image.load()
            pending.append((i, image.convert("RGB")))
        except Exception as error:  # noqa: BLE001 - any decode failure skips the image
            failed.append((i, error))
        if len(pending) >= batch_size:
            flush()
    flush()
    if failed:
        warnings.warn(f"Skipped {len(failed)} unreadable image(s) (first: item {failed[0][0]}: "
                      f"{failed[0][1]}).", stacklevel=3)
    return out[:len(kept)], kept


def _open_path(path):
    from PIL import Image

    return lambda: Image.open(path)


def _open_bytes(data):
    from PIL import Image

    return lambda: Image.open(io.BytesIO(data))


def image_folder(path, image_size, class_names=None, extensions=IMAGE_EXTENSIONS,
                 max_per_class=None, underscores_to_spaces=True, batch_size=64,
                 verbose=False):
    """Loads ``path/<class>/**/<image>`` into ``ClassificationData``.

    Classes are the sub-folders in sorted order (labels 0..C-1); their names
    become the class names, with ``_`` turned into spaces by default (for
    zero-shot prompts). Images are found recursively by extension.

    Args:
        path: the root folder.
        image_size: the model's input side ``S`` (OpenAI's mean/std), or the
            model (or its ``CLIPConfig``): its size and its weights' preprocessing.
        class_names: optional names to use instead of the folder names, in
            sorted-folder order; e.g. ``imagenet_class_names()`` for an ImageNet
            validation folder of WordNet-id sub-folders (``n01440764``, ...),
            whose sorted order is the class-index order.
        extensions: image file extensions (case-insensitive).
        max_per_class: keep at most this many images per class (sorted order).
        underscores_to_spaces: ``"great_white_shark"`` -> ``"great white shark"``.
        batch_size: images per preprocessing batch.
        verbose: tqdm progress bar.

    Example:
        >>> data = image_folder("pets/test", 224, max_per_class=50)
        >>> clf = ZeroShotClassifier(model, data.class_names)
        >>> clf.evaluate(data.images, data.labels)
    """
    options = model_options(image_size)
    _check_limit(max_per_class, "max_per_class")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"Image folder {path!r} not found; expected a folder with one "
                         "sub-folder of images per class.")
    folders = sorted(d for d in os.listdir(path)
                     if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    if not folders:
        raise ValueError(f"{path!r} has no class sub-folders; expected one sub-folder of "
                         "images per class (e.g. root/cat/1.jpg, root/dog/2.jpg).")
    if class_names is not None:
        class_names = list(class_names)
        if len(class_names) != len(folders):
            raise ValueError(f"Received {len(class_names)} class_names for {len(folders)} "
                             f"class folders {folders[:5]}...; expected one name per folder.")
    else:
        class_names = [f.replace("_", " ") if underscores_to_spaces else f for f in folders]
    extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    files, labels = [], []
    for label, folder in enumerate(folders):
        found = []
        for root, dirs, names in os.walk(os.path.join(path, folder)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(root, n) for n in sorted(names)
                      if n.lower().endswith(extensions) and not n.startswith(".")]
        if not found:
            raise ValueError(f"Class folder {os.path.join(path, folder)!r} holds no images; "
                             f"expected files ending in {extensions}.")
        found = found[:max_per_class] if max_per_class else found
        files += found
        labels += [label] * len(found)
    images, kept = _preprocess_all([_open_path(f) for f in files], options, batch_size,
                                   verbose, "image folder")
    if not kept:
        raise ValueError(f"No image under {path!r} could be read.")
    return ClassificationData(images, np.asarray(labels, np.int32)[kept], class_names,
                              [files[i] for i in kept])


def _group_pairs(keys, loaders, captions, labels, options, group_by_image, batch_size,
                 verbose, class_names, desc):
    """Builds ``PairedData``; rows with the same key share one image when grouping."""
    first = {}
    image_of_row = []
    for row, key in enumerate(keys):
        if group_by_image:
            first.setdefault(key, row)
            image_of_row.append(first[key])
        else:
            image_of_row.append(row)
    unique_rows = sorted(set(image_of_row))
    images, kept = _preprocess_all([loaders[r] for r in unique_rows], options, batch_size,
                                   verbose, desc)
    if not kept:
        raise ValueError("None of the images could be read; expected at least one.")
    position = {unique_rows[k]: n for n, k in enumerate(kept)}  # source row -> image number
    rows = [r for r in range(len(keys)) if image_of_row[r] in position]
    image_index = np.asarray([position[image_of_row[r]] for r in rows], np.int32)
    image_rows = [unique_rows[k] for k in kept]
    image_labels = None
    if labels is not None:
        image_labels = np.asarray([labels[r] for r in image_rows], np.int32)
    return PairedData(images, [captions[r] for r in rows], image_index, image_labels,
                      class_names, [keys[r] for r in image_rows])


def _read_column(path, column, sep):
    import csv

    import tensorflow as tf

    if sep is None:
        sep = "\t" if os.fspath(path).lower().endswith(".tsv") else ","
    with tf.io.gfile.GFile(os.fspath(path), "r") as f:
        reader = csv.DictReader(io.StringIO(f.read()), delimiter=sep)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{path}: label column {column!r} not found; the header has "
                             f"{reader.fieldnames}.")
        return [row[column] for row in reader]


def csv_pairs(path, image_size, image_key="filepath", caption_key="title", label_key=None,
              sep=None, image_root=None, class_names=None, group_by_image=True,
              max_samples=None, batch_size=64, verbose=False):
    """Reads CSV/TSV table(s) of (image path, caption[, label]) rows into ``PairedData``.

    Uses ``keras_clip.data.read_table`` (the training reader's parsing and path
    resolution). Rows naming the same image file become one image with several
    captions (``group_by_image``), as in COCO-style caption tables.

    Args:
        path: a table, a glob or a list of them.
        image_size: the model's input side ``S`` (OpenAI's mean/std), or the
            model (or its ``CLIPConfig``): its size and its weights' preprocessing.
        image_key, caption_key, sep, image_root: as in ``keras_clip.data.csv_dataset``.
        label_key: optional int label column (e.g. ``"label"`` in the tables
            ``SyntheticShapes.write_csv`` writes).
        class_names: optional names for those labels.
        group_by_image: merge rows with the same image path.
        max_samples: read at most this many rows.

    Example:
        >>> data = csv_pairs("val.csv", 224, caption_key="caption")
        >>> evaluate_retrieval(model, data)
    """
    from keras_clip.data.csv_dataset import read_table
    from keras_clip.data.pipeline import list_files

    options = model_options(image_size)
    _check_limit(max_samples, "max_samples")
    paths, captions, labels = [], [], [] if label_key else None
    for table in list_files(path, "CSV/TSV tables"):
        p, c = read_table(table, image_key, caption_key, sep, image_root)
        paths += p
        captions += c
        if label_key:
            labels += [int(v) for v in _read_column(table, label_key, sep)]
    if max_samples:
        paths, captions = paths[:max_samples], captions[:max_samples]
        labels = labels[:max_samples] if labels is not None else None
    if not paths:
        raise ValueError(f"{path!r} holds no rows; expected a header and (image, caption) rows.")
    return _group_pairs(paths, [_open_path(p) for p in paths], captions, labels, options,
                        group_by_image, batch_size, verbose, class_names, "csv images")


def webdataset_pairs(patterns, image_size, label_key=None, class_names=None,
                     max_samples=None, batch_size=64, verbose=False):
    """Reads WebDataset shards (``KEY.jpg`` + ``KEY.txt`` [+ ``KEY.json``]) into ``PairedData``.

    Uses ``keras_clip.data.iterate_tar_samples`` (the training reader), so
    incomplete samples and truncated shards are skipped the same way.

    Args:
        patterns: shard path(s), globs or brace ranges (``"val/{00000..00003}.tar"``).
        image_size: the model's input side ``S`` (OpenAI's mean/std), or the
            model (or its ``CLIPConfig``): its size and its weights' preprocessing.
        label_key: optional key of an int label in each sample's ``.json``
            (``"label"`` in the shards ``SyntheticShapes.write_webdataset`` writes).
        class_names: optional names for those labels.
        max_samples: read at most this many samples.

    Example:
        >>> data = webdataset_pairs("val/*.tar", 224, label_key="label")
    """
    from keras_clip.data.pipeline import list_files
    from keras_clip.data.webdataset import iterate_tar_samples

    options = model_options(image_size)
    _check_limit(max_samples, "max_samples")
    keys, loaders, captions, labels = [], [], [], [] if label_key else None
    for shard in list_files(patterns, "WebDataset shards"):
        if max_samples and len(keys) >= max_samples:
            break
        metadata = {}
        if label_key:
            metadata = {key: meta for key, _, meta in
                        iterate_tar_samples(shard, caption_ext="json")}
        for key, image_bytes, caption in iterate_tar_samples(shard, caption_ext="txt"):
            if max_samples and len(keys) >= max_samples:
                break
            if label_key:
                if key not in metadata or label_key not in json.loads(metadata[key]):
                    raise ValueError(f"{shard}: sample {key!r} has no {label_key!r} in its "
                                     ".json; expected one per sample when label_key is set.")
                labels.append(int(json.loads(metadata[key])[label_key]))
            keys.append(f"{shard}:{key}")
            loaders.append(_open_bytes(image_bytes))
            captions.append(caption.decode("utf-8"))
    if not keys:
        raise ValueError(f"No complete samples in {patterns!r}; expected KEY.<image> and "
                         "KEY.txt members.")
    return _group_pairs(keys, loaders, captions, labels, options, False, batch_size,
                        verbose, class_names, "webdataset images")


def _synthetic(n, image_size, seed, split, render_size):
    from keras_clip.data.synthetic import SyntheticShapes

    image_size = check_size(image_size)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int; received {n!r}.")
    return SyntheticShapes(render_size or image_size, seed=seed, split=split), image_size


def synthetic_classification(n, image_size=64, seed=1, split="all", render_size=None,
                             start=0):
    """``n`` labelled synthetic shapes (classes ``"<color> <shape>"`` of ``split``).

    Args:
        n: number of images.
        image_size: the model's input side ``S``.
        seed: dataset seed; use one different from training for fresh images.
        split: ``"train"``, ``"heldout"`` (combinations unseen in training) or ``"all"``.
        render_size: side the shapes are drawn at (default ``image_size``).
        start: index of the first sample.

    Example:
        >>> data = synthetic_classification(300, image_size=32, seed=7, split="heldout")
        >>> data.class_names[:2]
        ['red star', 'green circle']
    """
    ds, image_size = _synthetic(n, image_size, seed, split, render_size)
    raw, _, labels = ds.sample(int(n), start=start)
    from keras_clip.preprocessing import preprocess_numpy

    return ClassificationData(preprocess_numpy(raw, image_size), labels.astype(np.int32),
                              list(ds.classes))


def synthetic_pairs(n, image_size=64, seed=1, split="all", captions_per_image=1,
                    render_size=None, start=0):
    """``n`` synthetic images with ``captions_per_image`` captions each (``PairedData``).

    The first caption is the sample's own; the others fill the next caption
    templates of ``keras_clip.data.TEMPLATES`` with the same attributes.

    Example:
        >>> data = synthetic_pairs(100, image_size=32, seed=3, captions_per_image=2)
        >>> len(data.captions), data.image_index[:4].tolist()
        (200, [0, 0, 1, 1])
    """
    from keras_clip.data.synthetic import TEMPLATES
    from keras_clip.preprocessing import preprocess_numpy

    ds, image_size = _synthetic(n, image_size, seed, split, render_size)
    if not isinstance(captions_per_image, (int, np.integer)) or not \
            1 <= captions_per_image <= len(TEMPLATES):
        raise ValueError(f"captions_per_image must be an int in [1, {len(TEMPLATES)}]; "
                         f"received {captions_per_image!r}.")
    images, captions, image_index, labels = [], [], [], []
    for i in range(int(n)):
        image, caption, label, meta = ds.example(start + i)
        images.append(image)
        labels.append(label)
        fields = {k: meta[k] for k in ("color", "shape", "size", "position")}
        own = next((t for t in TEMPLATES if t.format(**fields) == caption), TEMPLATES[0])
        first = TEMPLATES.index(own)
        extra = [TEMPLATES[(first + k) % len(TEMPLATES)].format(**fields)
                 for k in range(1, captions_per_image)]
        captions += [caption] + extra
        image_index += [i] * captions_per_image
    return PairedData(preprocess_numpy(np.stack(images), image_size), captions,
                      np.asarray(image_index, np.int32), np.asarray(labels, np.int32),
                      list(ds.classes))
