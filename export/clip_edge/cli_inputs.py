"""What `clip-edge` reads from the command line: image paths, labels, caption files.

Every error is a ValueError whose message starts with the flag and the value
(`--images photo.txt: ...`), so that the CLI can print it as its one line.
An unreadable image found inside a folder is skipped and remembered in
`ImageReader.skipped`; one named on the command line is an error.
"""

import os

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_paths(items, flag):
    """`(path, from_folder)` pairs: files as given, folders expanded (sorted, image extensions).

    Example:
        >>> image_paths(["photos/"], "--images")  # doctest: +SKIP
        [('photos/a.jpg', True), ('photos/b.png', True)]
    """
    paths = []
    for item in items:
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if n.lower().endswith(IMAGE_EXTENSIONS))
            if not names:
                raise ValueError(f"{flag} {item}: the folder holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
            paths += [(os.path.join(item, name), True) for name in names]
        elif os.path.isfile(item):
            paths.append((item, False))
        else:
            raise ValueError(f"{flag} {item}: no such file or folder.")
    if not paths:
        raise ValueError(f"{flag}: no images given.")
    return paths


def read_lines(path, flag):
    """Non-empty lines of a UTF-8 text file; errors name `flag` and the file."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line.rstrip("\r\n") for line in file if line.strip()]
    except UnicodeDecodeError as error:
        raise ValueError(f"{flag} {path}: not UTF-8 text (byte {error.start}: {error.reason}).") from error
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}.") from error
    if not lines:
        raise ValueError(f"{flag} {path}: the file holds no non-empty lines.")
    return lines


def parse_labels(values):
    """`--labels` values -> labels: `cat dog`, `cat,dog` or one file with a label per line.

    Example:
        >>> parse_labels(["cat", "dog,bird"])
        ['cat', 'dog', 'bird']
    """
    if len(values) == 1 and os.path.isfile(values[0]):
        if values[0].lower().endswith(IMAGE_EXTENSIONS):
            raise ValueError(f"--labels {values[0]}: an image, not labels; put the images before "
                             "--labels (or end the labels with --).")
        labels = [line.strip() for line in read_lines(values[0], "--labels")]
    else:
        labels = [label.strip() for value in values for label in value.split(",") if label.strip()]
    if not labels:
        raise ValueError(f"--labels {' '.join(values)!r}: no labels; give 'cat dog', 'cat,dog' "
                         "or a file with one label per line.")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"--labels: {', '.join(map(repr, repeated))} given more than once.")
    return labels


def _reason(error, path):
    """The error's message without the runtime's `images[0]: '<path>' is` prefix."""
    message = " ".join(str(error).split()) or type(error).__name__
    message = message.split(": ", 1)[1] if message.startswith("images[0]: ") else message
    return message.replace(f"{path!r} is ", "", 1)


class ImageReader:
    """Preprocesses images for a runtime; skips unreadable images found in folders.

    Args:
        edge: a `ClipEdge` (its `preprocess` does the work).
        flag: how the command line names the images (`--images`, `IMAGE`).
        errors: the exception types that mean "this file is not a usable image".
    """

    def __init__(self, edge, flag, errors):
        self.edge, self.flag, self.errors = edge, flag, errors
        self.skipped = []  # (path, reason)

    def __call__(self, batch):
        """`(path, from_folder)` pairs -> (kept paths, float32 `(B, S, S, 3)` or None when none is kept)."""
        kept, pixels = [], []
        for path, from_folder in batch:
            try:
                pixels.append(self.edge.preprocess([path]))
            except self.errors as error:
                if not from_folder:
                    raise ValueError(f"{self.flag} {path}: {_reason(error, path)}") from error
                self.skipped.append((path, _reason(error, path)))
                continue
            kept.append(path)
        return kept, (np.concatenate(pixels) if pixels else None)

    def report(self, shown=10):
        """One line naming the skipped images (at most `shown`), or None when none was skipped."""
        if not self.skipped:
            return None
        names = "; ".join(f"{path}: {reason.rstrip('.')}" for path, reason in self.skipped[:shown])
        more = f" and {len(self.skipped) - shown} more" if len(self.skipped) > shown else ""
        count = len(self.skipped)
        return f"skipped {count} unreadable image{'s' if count > 1 else ''}: {names}{more}"
