"""`python -m clip_edge` / `clip-edge`: embed images or texts, classify images, verify a folder.

Bad input (a missing or tampered folder, a missing or unreadable image, no
labels, ...) ends with one `clip-edge: error: ...` line naming the file or flag
and exit code 2, never a traceback. `verify` exits 1 when a number is below
the manifest's thresholds.

Examples:
    $ python -m clip_edge embed vit_b32_export --images photos/ --out photos.npy
    $ python -m clip_edge embed vit_b32_export --texts captions.txt --out captions.npy
    $ python -m clip_edge classify vit_b32_export --labels cat,dog,car photos/*.jpg
    $ python -m clip_edge verify vit_b32_export --runtime litert --precision int8
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
USER_ERRORS = (ValueError, OSError, Image.DecompressionBombError)


def _image_paths(items):
    paths = []
    for item in items:
        if os.path.isdir(item):
            paths += sorted(
                os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(IMAGE_EXTENSIONS)
            )
        else:
            paths.append(item)
    if not paths:
        raise ValueError(f"No images found in {items}.")
    return paths


def _read_lines(path, flag):
    """Non-empty lines of a UTF-8 text file; errors name `flag` and the file."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line.rstrip("\n") for line in file if line.strip()]
    except UnicodeDecodeError as error:
        raise ValueError(f"{flag} {path}: not UTF-8 text (byte {error.start}: {error.reason}).") from error
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}.") from error
    if not lines:
        raise ValueError(f"{flag} {path}: the file holds no non-empty lines.")
    return lines


def _labels(value):
    if os.path.isfile(value):
        return [line.strip() for line in _read_lines(value, "--labels")]
    labels = [label.strip() for label in value.split(",") if label.strip()]
    if not labels:
        raise ValueError(f"--labels: no labels in {value!r}; give 'cat,dog' or a file with one per line.")
    return labels


def _pixels(edge, paths):
    """Preprocessed images; an image that cannot be read is named in the error."""
    pixels = []
    for path in paths:
        try:
            pixels.append(edge.preprocess([path]))
        except USER_ERRORS as error:
            raise ValueError(f"image {path}: {error}") from error
    return np.concatenate(pixels)


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


RUNTIME_OPTIONS = (
    ("--runtime", "onnx", ("onnx", "litert"), "ONNX Runtime or LiteRT towers"),
    ("--precision", "fp32", ("fp32", "fp16", "int8"), "tower variant"),
    ("--preprocess", None, ("graph", "python"), "default: graph when the folder has the graphs"),
)


def _runtime_options(parser, top_level):
    """Adds RUNTIME_OPTIONS; on sub-commands their default is SUPPRESS, so either place works."""
    for flag, default, choices, text in RUNTIME_OPTIONS:
        parser.add_argument(flag, default=default if top_level else argparse.SUPPRESS, choices=choices,
                            help=text)


def _parser():
    parser = argparse.ArgumentParser(prog="clip-edge", description="CLIP on ONNX Runtime or LiteRT.")
    _runtime_options(parser, True)
    parser.add_argument("--batch-size", type=int, default=16)
    commands = parser.add_subparsers(dest="command", required=True)
    options = argparse.ArgumentParser(add_help=False)
    _runtime_options(options, False)
    embed = commands.add_parser("embed", parents=[options], help="embed images or texts to .npy")
    embed.add_argument("folder", help="export folder (manifest.json)")
    source = embed.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", help="image files or folders")
    source.add_argument("--texts", help="a text file, one caption per line")
    embed.add_argument("--out", required=True, help="output .npy (unit-norm rows)")
    classify = commands.add_parser("classify", parents=[options], help="zero-shot classification")
    classify.add_argument("folder")
    classify.add_argument("images", nargs="+", help="image files or folders")
    classify.add_argument("--labels", required=True, help="comma-separated labels, or a file with one per line")
    classify.add_argument("--template", action="append", help="e.g. 'a photo of a {}.' (repeatable)")
    verify = commands.add_parser("verify", parents=[options],
                                 help="run the folder's conformance file; exit 1 below its thresholds")
    verify.add_argument("folder")
    return parser


def _embed(edge, args):
    if args.images:
        paths = _image_paths(args.images)
        chunks = [edge.encode_pixels(_pixels(edge, b), True) for b in _batches(paths, args.batch_size)]
    else:
        lines = _read_lines(args.texts, "--texts")
        chunks = [edge.encode_texts(b, normalized=True) for b in _batches(lines, args.batch_size)]
    embeddings = np.concatenate(chunks)
    try:
        np.save(args.out, embeddings)
    except OSError as error:
        raise ValueError(f"--out {args.out}: {error.strerror or error}.") from error
    print(json.dumps({"out": args.out, "shape": list(embeddings.shape)}))


def _classify(edge, args):
    labels = _labels(args.labels)
    paths = _image_paths(args.images)
    classes = edge.class_embeddings(labels, args.template)
    for batch in _batches(paths, args.batch_size):
        logits = edge.logit_scale * edge.encode_pixels(_pixels(edge, batch), True) @ classes.T
        logits -= logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        for path, row in zip(batch, probabilities):
            best = int(np.argmax(row))
            print(json.dumps({"image": path, "label": labels[best], "probability": float(row[best])}))


def _verify(edge, args):
    """Prints the conformance lines; returns 0 on PASS, 1 on FAIL."""
    result = edge.verify()
    print("\n".join(result.lines()))
    return 0 if result.passed else 1


COMMANDS = {"embed": _embed, "classify": _classify, "verify": _verify}


def main(argv=None):
    """Entry point; returns the exit code (2 on bad input, 1 when `verify` fails)."""
    from clip_edge.runtime import ClipEdge

    args = _parser().parse_args(argv)
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, received {args.batch_size}.")
        edge = ClipEdge(args.folder, runtime=args.runtime, precision=args.precision,
                        preprocess=args.preprocess)
        return COMMANDS[args.command](edge, args) or 0
    except USER_ERRORS as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"clip-edge: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
