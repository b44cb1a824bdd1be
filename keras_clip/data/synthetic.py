"""A bundled synthetic captioned-image dataset: coloured shapes on dark backgrounds.

Every image shows one shape (``SHAPES``) in one colour (``COLORS``), of one size
(``SIZES``) at one position (``POSITIONS``), on a dark, slightly noisy background.
Its caption comes from one of ``TEMPLATES``. Sample ``i`` of a dataset is a pure
function of ``(seed, split, i)``, so datasets are reproducible and random access.

Six (colour, shape) combinations, ``HELDOUT_COMBOS``, never appear in the
``"train"`` split: a model trained on it can be tested zero-shot on them (the
``"heldout"`` split), each colour and each shape being seen in other combinations.

``shift="textured"`` draws the same classes in another domain, for
fine-tuning benchmarks: shapes as thick outlines (not filled) on bright,
striped and noisy backgrounds.
"""

import csv
import io
import json
import math
import os
import tarfile

import numpy as np
from PIL import Image, ImageDraw

# name -> RGB, chosen far apart in hue and brightness so 32-px images are unambiguous.
COLORS = {
    "red": (225, 30, 30),
    "green": (40, 190, 40),
    "blue": (40, 80, 235),
    "yellow": (240, 225, 40),
    "purple": (160, 50, 210),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
# name -> diameter of the shape as a fraction of the image side.
SIZES = {"small": 0.42, "large": 0.62}
# name -> centre (x, y) as fractions of the image side.
POSITIONS = {
    "center": (0.5, 0.5),
    "top left": (0.3, 0.3),
    "top right": (0.7, 0.3),
    "bottom left": (0.3, 0.7),
    "bottom right": (0.7, 0.7),
}
# (colour, shape) pairs held out of the "train" split: one per colour.
HELDOUT_COMBOS = (
    ("red", "star"),
    ("green", "circle"),
    ("blue", "triangle"),
    ("yellow", "square"),
    ("purple", "cross"),
    ("white", "triangle"),
)
TEMPLATES = (
    "a {size} {color} {shape} in the {position}",
    "a photo of a {color} {shape}.",
    "a {color} {shape}",
    "a picture of a {size} {color} {shape}.",
    "a {color} {shape} on a dark background",
    "there is a {color} {shape} in the {position} of the image",
)
SPLITS = ("train", "heldout", "all")
SHIFTS = (None, "textured")
_SUPERSAMPLE = 4  # drawn at up to 4x, then box-filtered down: antialiased edges
_MAX_CANVAS = 512


def class_names(split="all"):
    """The ``"color shape"`` class names of a split, in a fixed order.

    Example:
        >>> class_names("heldout")[:2]
        ['red star', 'green circle']
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; received {split!r}.")
    if split == "heldout":
        return [f"{c} {s}" for c, s in HELDOUT_COMBOS]
    held = set(HELDOUT_COMBOS)
    return [
        f"{c} {s}"
        for c in COLORS
        for s in SHAPES
        if split == "all" or (c, s) not in held
    ]


def _shape_polygon(shape, cx, cy, r, angle):
    """Vertices of ``shape`` centred at (cx, cy) with circumradius r."""

    def rotate(points):
        ca, sa = math.cos(angle), math.sin(angle)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]

    if shape == "square":
        h = r / math.sqrt(2) * 1.15
        return rotate([(-h, -h), (h, -h), (h, h), (-h, h)])
    if shape == "triangle":
        return rotate(
            [(r * math.cos(a), r * math.sin(a) + 0.15 * r)
             for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        )
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.42 * r
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return rotate(pts)
    if shape == "cross":
        t = r / 3
        return rotate([(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t),
                       (t, r), (-t, r), (-t, t), (-r, t), (-r, -t), (-t, -t)])
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}.")


def _check_shift(shift):
    if shift not in SHIFTS:
        raise ValueError(f"shift must be one of {SHIFTS}; received {shift!r}.")


def _textured_background(big, rng):
    """A bright grey canvas with diagonal stripes of random period, angle and phase."""
    level = rng.uniform(120, 175) + rng.uniform(-12, 12, size=3)
    angle, period = rng.uniform(0, math.pi), big * rng.uniform(0.12, 0.3)
    y, x = np.mgrid[0:big, 0:big]
    wave = np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period
                  + rng.uniform(0, 2 * math.pi))
    canvas = level + rng.uniform(25, 45) * wave[..., None]
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def render_shape(color, shape, size, position, image_size=64, rng=None, shift=None):
    """Draws one shape image as uint8 ``(image_size, image_size, 3)``.

    Args:
        color, shape, size, position: keys of ``COLORS``, ``SHAPES``, ``SIZES``,
            ``POSITIONS``.
        image_size: side of the square image in pixels.
        rng: a ``numpy.random.Generator`` for the small jitters (background,
            colour, rotation, offset, noise); ``None`` draws a clean image.
        shift: ``None`` (filled shapes on dark backgrounds) or ``"textured"``
            (outlines on bright striped backgrounds; needs ``rng``).

    Example:
        >>> render_shape("red", "star", "large", "center", 32).shape
        (32, 32, 3)
    """
    for value, table, what in ((color, COLORS, "color"), (size, SIZES, "size"),
                               (position, POSITIONS, "position")):
        if value not in table:
            raise ValueError(f"unknown {what} {value!r}; expected one of {list(table)}.")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}.")
    _check_shift(shift)
    if shift and rng is None:
        raise ValueError(f"shift={shift!r} draws a random texture; pass rng "
                         "(a numpy.random.Generator).")
    jitter = (lambda lo, hi: rng.uniform(lo, hi)) if rng is not None else (lambda lo, hi: 0.0)
    big = image_size * max(1, min(_SUPERSAMPLE, _MAX_CANVAS // image_size))
    bg = np.clip(np.array([30, 30, 34]) + jitter(-14, 14) + np.array(
        [jitter(-6, 6) for _ in range(3)]), 0, 255).astype(np.uint8)
    canvas = Image.new("RGB", (big, big), tuple(int(v) for v in bg))
    fill = tuple(int(np.clip(v + jitter(-15, 15), 0, 255)) for v in COLORS[color])
    style = {"fill": fill}
    if shift == "textured":
        canvas = _textured_background(big, rng)
        style = {"outline": fill, "width": max(1, round(big * rng.uniform(0.06, 0.09)))}
    draw = ImageDraw.Draw(canvas)
    d = SIZES[size] * (1.0 + jitter(-0.06, 0.06))
    r = d / 2
    px, py = POSITIONS[position]
    cx = np.clip(px + jitter(-0.03, 0.03), r + 0.02, 0.98 - r) * big
    cy = np.clip(py + jitter(-0.03, 0.03), r + 0.02, 0.98 - r) * big
    r *= big
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], **style)
    else:
        angle = math.radians(jitter(-12, 12))
        draw.polygon(_shape_polygon(shape, cx, cy, r, angle), **style)
    image = np.asarray(canvas.resize((image_size, image_size), Image.BOX), np.float32)
    if rng is not None:
        image = image + rng.normal(0.0, 12.0 if shift else 4.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class SyntheticShapes:
    """Captioned images of coloured shapes, generated on the fly, deterministic by seed.

    Args:
        image_size: side of the square RGB images, in pixels.
        seed: the dataset seed; sample ``i`` depends only on ``(seed, split, i)``.
            Use another seed for fresh evaluation images.
        split: ``"train"`` (all combinations but ``HELDOUT_COMBOS``),
            ``"heldout"`` (only those) or ``"all"``.
        shift: ``None``, or ``"textured"`` for the shifted domain (outlined
            shapes on bright striped backgrounds; other images than ``None``'s).

    Attributes:
        classes: the split's ``"color shape"`` names; ``labels`` index into it.

    6 colours (red, green, blue, yellow, purple, white) x 5 shapes (circle,
    square, triangle, star, cross) = 30 classes, 2 sizes, 5 positions, 6 caption
    templates. Held out of ``"train"`` (``HELDOUT_COMBOS``): red star, green
    circle, blue triangle, yellow square, purple cross, white triangle; the 24
    others are the seen classes. A small CNN separates all 30 classes at 32 px
    (100% on fresh images after 8 epochs of 4,000), so they are unambiguous.

    Example:
        >>> ds = SyntheticShapes(image_size=32, seed=0, split="train")
        >>> images, captions, labels = ds.sample(4)
        >>> images.shape, images.dtype
        ((4, 32, 32, 3), dtype('uint8'))
        >>> ds.classes[labels[0]] in captions[0]
        True
    """

    def __init__(self, image_size=64, seed=0, split="train", shift=None):
        _check_shift(shift)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; received {split!r}.")
        if not isinstance(image_size, (int, np.integer)) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8; received {image_size!r}.")
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.split = split
        self.shift = shift
        self.classes = class_names(split)

    def __repr__(self):
        return (f"SyntheticShapes(image_size={self.image_size}, seed={self.seed}, "
                f"split={self.split!r}" + (f", shift={self.shift!r})" if self.shift else ")"))

    def example(self, index):
        """Sample ``index``: ``(uint8 image (S, S, 3), caption, label, metadata dict)``."""
        key = [self.seed, SPLITS.index(self.split), int(index)]
        rng = np.random.default_rng(key + [SHIFTS.index(self.shift)] if self.shift else key)
        label = int(rng.integers(len(self.classes)))
        color, shape = self.classes[label].split(" ")
        size = list(SIZES)[rng.integers(len(SIZES))]
        position = list(POSITIONS)[rng.integers(len(POSITIONS))]
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        caption = template.format(size=size, color=color, shape=shape, position=position)
        image = render_shape(color, shape, size, position, self.image_size, rng, self.shift)
        meta = {"color": color, "shape": shape, "size": size, "position": position,
                "label": label, "class_name": self.classes[label], "caption": caption}
        return image, caption, label, meta

    def sample(self, n, start=0):
        """Samples ``start .. start + n - 1``: ``(images (n, S, S, 3) uint8, captions, labels)``.

        Example:
            >>> images, captions, labels = SyntheticShapes(32).sample(2)
        """
        if n < 0:
            raise ValueError(f"n must be >= 0; received {n}.")
        out = [self.example(start + i) for i in range(n)]
        images = np.stack([o[0] for o in out]) if out else np.zeros(
            (0, self.image_size, self.image_size, 3), np.uint8)
        return images, [o[1] for o in out], np.array([o[2] for o in out], np.int32)

    def as_tf_dataset(self, batch_size=32, tokenizer=None, image_size=None, num_samples=None,
                      start=0, training=True, seed=None, include_labels=False,
                      num_parallel_calls=None):
        """A ``tf.data.Dataset`` of ``{"images", "token_ids"}`` batches.

        Images are rendered in parallel, then go through the same random resized
        crop (``training=True``) or center crop as the file pipelines.

        Args:
            batch_size: samples per batch (the last, smaller one is kept).
            tokenizer: callable on a batch of ``tf.string`` -> int32 ``(B, 77)``;
                default ``keras_clip.CLIPTokenizer()``.
            image_size: output side; default the dataset's ``image_size``.
            num_samples: samples per epoch; ``None``: an endless stream of new
                samples (pass ``steps_per_epoch`` to ``fit``).
            start: index of the first sample.
            training: random resized crop if True, else center crop.
            seed: seed of the crop randomness (default the dataset seed).
            include_labels: also yield ``"labels"`` (int32 ``(B,)``).
            num_parallel_calls: parallel renders (default ``tf.data.AUTOTUNE``).

        Example:
            >>> ds = SyntheticShapes(32).as_tf_dataset(8, num_samples=64)
            >>> batch = next(ds.as_numpy_iterator())  # {"images": (8,32,32,3), ...}
        """
        import tensorflow as tf

        from keras_clip.data import pipeline
        from keras_clip.data.options import PipelineOptions

        options = PipelineOptions(int(image_size or self.image_size), batch_size,
                                  tokenizer=tokenizer, training=training,
                                  seed=self.seed if seed is None else seed,
                                  num_parallel_calls=num_parallel_calls, drop_remainder=False)
        stop = None if num_samples is None else start + int(num_samples)
        if stop is not None and stop <= start:
            raise ValueError(f"num_samples must be > 0; received {num_samples}.")
        indices = (tf.data.Dataset.counter(start) if stop is None
                   else tf.data.Dataset.range(start, stop))
        s = self.image_size

        def render(i):
            image, caption, label, _ = self.example(int(i))
            return image, np.bytes_(caption.encode()), np.int32(label)

        def load(i):
            image, caption, label = tf.numpy_function(
                render, [i], (tf.uint8, tf.string, tf.int32), stateful=False)
            image.set_shape((s, s, 3))
            caption.set_shape(())
            label.set_shape(())
            return {"image": image, "caption": caption, "label": label}

        ds = indices.map(load, num_parallel_calls=options.parallel_calls, deterministic=True)
        return pipeline.finish(ds, options, pipeline.DataQualityStats(), decode=False,
                               include_labels=include_labels)

    def write_webdataset(self, directory, n, shard_size=1000, image_format="jpg", start=0,
                         quality=95):
        """Writes ``n`` samples as WebDataset tar shards in img2dataset's layout.

        Each sample is ``KEY.jpg|png|webp``, ``KEY.txt`` (caption) and ``KEY.json``
        (label and attributes), with 9-digit keys; shards are ``00000.tar`` ...

        Returns:
            The sorted list of shard paths.

        Example:
            >>> shards = SyntheticShapes(32).write_webdataset("/tmp/shapes_wds", 100, 50)
        """
        fmt = _image_format(image_format)
        if n <= 0 or shard_size <= 0:
            raise ValueError(f"n and shard_size must be > 0; received n={n}, "
                             f"shard_size={shard_size}.")
        os.makedirs(directory, exist_ok=True)
        paths = []
        for shard in range(math.ceil(n / shard_size)):
            path = os.path.join(directory, f"{shard:05d}.tar")
            with tarfile.open(path, "w") as tar:
                for j in range(shard * shard_size, min(n, (shard + 1) * shard_size)):
                    image, caption, _, meta = self.example(start + j)
                    key = f"{shard:05d}{j - shard * shard_size:04d}"
                    _add_bytes(tar, f"{key}.{image_format}", _encode(image, fmt, quality))
                    _add_bytes(tar, f"{key}.txt", caption.encode())
                    meta = dict(meta, key=key, index=start + j)
                    _add_bytes(tar, f"{key}.json", json.dumps(meta).encode())
            paths.append(path)
        return paths

    def write_csv(self, directory, n, image_format="jpg", start=0, sep=",",
                  image_key="filepath", caption_key="title", filename=None, quality=95):
        """Writes ``n`` images under ``directory/images/`` and a CSV/TSV listing them.

        Image paths in the file are relative to its folder; ``csv_dataset`` resolves
        them there by default.

        Returns:
            The path of the CSV (``data.csv``, or ``data.tsv`` when ``sep="\\t"``).

        Example:
            >>> path = SyntheticShapes(32).write_csv("/tmp/shapes_csv", 100)
        """
        fmt = _image_format(image_format)
        if n <= 0:
            raise ValueError(f"n must be > 0; received {n}.")
        os.makedirs(os.path.join(directory, "images"), exist_ok=True)
        filename = filename or ("data.tsv" if sep == "\t" else "data.csv")
        path = os.path.join(directory, filename)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter=sep)
            writer.writerow([image_key, caption_key, "label"])
            for j in range(n):
                image, caption, label, _ = self.example(start + j)
                rel = f"images/{j:09d}.{image_format}"
                with open(os.path.join(directory, rel), "wb") as g:
                    g.write(_encode(image, fmt, quality))
                writer.writerow([rel, caption, label])
        return path


def write_webdataset(directory, n, shard_size=1000, image_size=64, seed=0, split="train",
                     **kwargs):
    """``SyntheticShapes(image_size, seed, split).write_webdataset(directory, n, shard_size)``.

    Example:
        >>> shards = write_webdataset("/tmp/shapes_wds", 200, shard_size=100)
    """
    return SyntheticShapes(image_size, seed, split).write_webdataset(
        directory, n, shard_size, **kwargs)


def write_csv(directory, n, image_size=64, seed=0, split="train", **kwargs):
    """``SyntheticShapes(image_size, seed, split).write_csv(directory, n)``.

    Example:
        >>> csv_path = write_csv("/tmp/shapes_csv", 200)
    """
    return SyntheticShapes(image_size, seed, split).write_csv(directory, n, **kwargs)


def _image_format(ext):
    formats = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
    if ext not in formats:
        raise ValueError(f"image_format must be one of {list(formats)}; received {ext!r}.")
    return formats[ext]


def _encode(image, fmt, quality):
    buf = io.BytesIO()
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(image).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))
