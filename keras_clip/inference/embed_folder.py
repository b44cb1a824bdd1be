"""A folder of images to embeddings on disk: decode, preprocess, encode and write, overlapped.

A thread pool decodes each file with PIL and preprocesses it with PIL's own
bicubic resize (`keras_clip.preprocessing.preprocess_numpy`, the path
`ImagePreprocessor` takes for PIL images and arrays: the same numbers as
open_clip's `preprocess`), a bounded window ahead of the model; the calling
thread runs the model on fixed-size batches (the last one padded, so one
compiled shape) and appends each batch to a resumable `ShardStore`. PIL and the
backends release the GIL, so decoding runs while the model computes.

Example:
    >>> from keras_clip.inference import embed_folder
    >>> result = embed_folder(model, "photos/", "photos.npy", batch_size=64)  # doctest: +SKIP
    >>> result.images, result.skipped   # rows written; [(file, reason)] not readable
"""

import collections
import dataclasses
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from keras_clip.inference.precision import check_precision, for_precision
from keras_clip.inference.shards import ShardStore, check_output

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclasses.dataclass
class EmbedResult:
    """What `embed_folder` did: rows written, files skipped and where the time went.

    `decode_s` and `preprocess_s` add up the worker threads' time (they overlap
    with each other and with `model_s`); `wall_s` is the whole call.
    """

    output: str
    images: int
    skipped: list
    resumed: int
    wall_s: float
    decode_s: float = 0.0
    preprocess_s: float = 0.0
    model_s: float = 0.0
    write_s: float = 0.0

    @property
    def images_per_s(self):
        return self.images / self.wall_s if self.wall_s else 0.0


def list_images(folder):
    """Image files under `folder` (recursive), as sorted paths relative to it.

    Example:
        >>> list_images("photos/")  # doctest: +SKIP
        ['a.jpg', 'b/c.png']
    """
    if not os.path.isdir(folder):
        raise ValueError(f"--images {str(folder)!r} is not a folder.")
    found = sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder) for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(folder)!r}.")
    broken = [name for name in found if "\n" in name or "\r" in name]
    if broken:
        raise ValueError(f"--images {str(folder)!r}: the file name {broken[0]!r} holds a line "
                         "break and cannot be listed one per line; rename it.")
    return found


def preprocessing_of(model):
    """`preprocess_numpy` keyword arguments for `model`: its image size and its weights' mean, std, resize."""
    from keras_clip.preprocessing.rules import model_options

    options = model_options(model if hasattr(model, "config") else int(model.image_size))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}  # JSON-exact


def load_image(path, options):
    """Decodes and preprocesses one file: `(pixels (S, S, 3) float32, decode s, preprocess s)`.

    `options` are `preprocess_numpy`'s keyword arguments (`preprocessing_of(model)`).
    """
    from keras_clip.preprocessing import preprocess_numpy

    start = time.perf_counter()
    with Image.open(path) as image:
        image.load()
        decoded = time.perf_counter()
        pixels = preprocess_numpy(image, **options)[0]
    return pixels, decoded - start, time.perf_counter() - decoded


def _safe_load(path, options):
    try:
        return load_image(path, options)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return " ".join(f"{type(error).__name__}: {error}".split())  # the reason, one line


def _fingerprint(model):
    """A short hash of the image tower's first and last weights (the resume check)."""
    digest = hashlib.sha256()
    weights = model.image_encoder.weights
    for variable in (weights[0], weights[-1]):
        digest.update(np.asarray(variable.numpy() if hasattr(variable, "numpy")
                                 else variable).tobytes())
    return digest.hexdigest()[:16]


def _encode(model, batch, batch_size, normalize):
    """`model.encode_image` on a batch padded to `batch_size` rows (padding dropped)."""
    from keras_clip.evaluation.features import l2_normalize, to_numpy

    n = len(batch)
    if n < batch_size:
        batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
    embeddings = to_numpy(model.encode_image(batch))[:n].astype(np.float32)
    return l2_normalize(embeddings) if normalize else embeddings


def _progress(total, initial, verbose):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="img", desc="embedding images")


def embed_folder(model, folder, output, batch_size=64, normalize=False, workers=None,
                 verbose=True, restart=False, precision=None):
    """Embeds every image under `folder` into `output`, resuming an interrupted run.

    Writes `output` (`.npy` of float32 `(N, D)` rows with the file list in
    `.txt` beside it, or `.parquet` with `name` and `embedding` columns); the
    names are `os.path.join(folder, relative path)` in sorted order. Files PIL
    cannot read are skipped and listed in the result. While running, finished
    batches live in `output + ".partial/"`; a later call with the same model
    and settings continues from there.

    Args:
        model: a `keras_clip.CLIP` (anything with `encode_image`, `image_size`
            and `image_encoder`).
        folder: the folder of images (searched recursively).
        output: `.npy` or `.parquet` path.
        batch_size: images per model call.
        normalize: L2-normalise each embedding.
        workers: decoding threads (default: the CPU count).
        verbose: show a progress bar (tqdm).
        restart: ignore an interrupted run's partial results.
        precision: `"fp32"` or `"bf16"` (the image tower under the `bfloat16`
            policy, same weights: 3.9-4.3x fp32's speed on TensorFlow with AMX,
            cosine 0.9999 to fp32; see `inference.precision`); default: the
            model's own. A resumed run must use the same precision.

    Returns:
        an `EmbedResult`.

    Example:
        >>> result = embed_folder(model, "photos/", "photos.npy")  # doctest: +SKIP
        >>> np.load("photos.npy").shape, open("photos.txt").read().split()[:1]
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size}.")
    if precision is not None:
        check_precision(precision)
    check_output(output)
    files = list_images(folder)
    started = time.perf_counter()
    weights = _fingerprint(model)
    model, precision = for_precision(model, precision)
    meta = {"folder": os.path.abspath(folder), "normalize": bool(normalize),
            "preprocessing": preprocessing_of(model), "weights": weights,
            "precision": precision}
    store = ShardStore(output, meta, restart=restart)
    done = store.done()
    todo = [f for f in files if f not in done]
    result = EmbedResult(str(output), 0, [], len(files) - len(todo), 0.0)
    bar = _progress(len(files), result.resumed, verbose)
    try:
        _run(model, folder, todo, store, int(batch_size), normalize, workers, result, bar)
    except BaseException:
        store.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    start = time.perf_counter()
    result.images = store.finalize(lambda rel: os.path.join(folder, rel))
    result.write_s += time.perf_counter() - start
    result.skipped = store.skipped()
    result.wall_s = time.perf_counter() - started
    return result


def _run(model, folder, todo, store, batch_size, normalize, workers, result, bar):
    """The pipeline: a window of decode futures ahead of batched model calls."""
    options = preprocessing_of(model)
    workers = int(workers or os.cpu_count() or 1)
    window = batch_size * 2 + workers
    pending = collections.deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        queue = iter(todo)

        def fill():
            while len(pending) < window:
                rel = next(queue, None)
                if rel is None:
                    return
                pending.append((rel, pool.submit(_safe_load, os.path.join(folder, rel), options)))

        fill()
        while pending:
            names, pixels, skipped = [], [], []
            while pending and len(pixels) < batch_size:
                rel, future = pending.popleft()
                fill()
                loaded = future.result()
                if isinstance(loaded, str):
                    skipped.append((rel, loaded))
                    continue
                names.append(rel)
                pixels.append(loaded[0])
                result.decode_s += loaded[1]
                result.preprocess_s += loaded[2]
            start = time.perf_counter()
            embeddings = (_encode(model, np.stack(pixels), batch_size, normalize) if pixels
                          else np.zeros((0, 0), np.float32))
            result.model_s += time.perf_counter() - start
            start = time.perf_counter()
            store.append(names, embeddings, skipped)
            result.write_s += time.perf_counter() - start
            if bar is not None:
                bar.update(len(names) + len(skipped))

