"""`clip-edge` / `python -m clip_edge`: embed images or texts, classify images, verify a folder.

Bad input (a missing or tampered folder, a missing or unreadable image, no
labels, ...) ends with one `clip-edge: error: ...` line naming the flag and the
value, and exit code 2, never a traceback. An unreadable image inside a folder
is skipped and named on stderr at the end. `verify` exits 1 when a number is
below the manifest's thresholds. The global options (`--runtime`,
`--precision`, `--preprocess`, `--batch-size`, `--verbose`) go before or after
the sub-command.

Examples:
    $ clip-edge classify vit_b32_export photo.jpg photos/ --labels cat dog bird
    $ clip-edge embed vit_b32_export --images photos/ --out photos.npy   # + photos.files.txt
    $ clip-edge verify vit_b32_export --runtime litert --precision int8
"""

import argparse
import contextlib
import json
import os
import sys
import textwrap

import numpy as np
from PIL import Image

from clip_edge.cli_inputs import ImageReader, image_paths, parse_labels, read_lines

USER_ERRORS = (ValueError, OSError, Image.DecompressionBombError)


def _batch_size(value):
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, received {value!r}")
    return size


GLOBAL_OPTIONS = (  # flag, default, argparse keywords, help
    ("--runtime", "onnx", {"choices": ("onnx", "litert")}, "ONNX Runtime or LiteRT (.tflite) towers"),
    ("--precision", "fp32", {"choices": ("fp32", "fp16", "int8")}, "tower variant (fp16/int8 must be exported)"),
    ("--preprocess", "auto", {"choices": ("auto", "graph", "python")},
     ("graph: the folder's ONNX pre-processing graphs; python: PIL and the Python tokenizer; "
      "auto: graph when the folder has them")),
    ("--batch-size", 16, {"type": _batch_size}, "images or captions per tower call"),
    ("--verbose", False, {"action": "store_true"}, "show ONNX Runtime's warnings and LiteRT's log"),
)

DESCRIPTIONS = {  # command: (what it does, example)
    None: (("CLIP towers exported by `keras-clip export`, run with ONNX Runtime or LiteRT (no Keras, "
            "TensorFlow, JAX or PyTorch). The options below go before or after the sub-command."),
           __doc__.split("Examples:\n")[1].replace("    $ ", "  ").rstrip()),
    "embed": (("Embed images (files or folders) or captions (a text file, one per line) into a .npy of "
               "unit-norm rows. Next to it, <out>.files.txt (images) or <out>.texts.txt (captions) holds "
               "one line per row: the file or caption that row embeds. Unreadable images in a folder are "
               "skipped and named at the end."),
              "  clip-edge embed vit_b32_export --images photos/ --out photos.npy"),
    "classify": (("Zero-shot classification: every label's probability for each image, most probable "
                  "first (--json: one JSON object per image). Labels are 'cat dog bird', 'cat,dog,bird' "
                  "or a file with one label per line; give the images before --labels (or end the "
                  "labels with --). Unreadable images in a folder are skipped and named at the end."),
                 "  clip-edge classify vit_b32_export photo.jpg photos/ --labels cat dog bird"),
    "verify": (("Run the folder's conformance.npz through this runtime, precision and pre-processing "
                "path; exit 0 on PASS, 1 below the manifest's thresholds."),
               "  clip-edge verify vit_b32_export --runtime litert --precision int8"),
}


def _description(command):
    text, example = DESCRIPTIONS[command]
    return textwrap.fill(text, 79) + "\n\nexample" + ("s" if command is None else "") + ":\n" + example


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (not for flags and required options), descriptions kept as written."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one `clip-edge: error:` line and exit code 2."""

    def error(self, message):
        if self.prog.endswith("classify") and "required: IMAGE" in message:
            message += "; give the images before --labels, or end the labels with --"
        self.exit(2, f"clip-edge: error: {message} (see `{self.prog} --help`)\n")


def _add_global_options(parser, top_level):
    """On sub-commands the default is SUPPRESS, so a value given before the sub-command stays."""
    for flag, default, keywords, text in GLOBAL_OPTIONS:
        help_text = text if top_level or default is False else f"{text} (default: {default})"
        parser.add_argument(flag, default=default if top_level else argparse.SUPPRESS, help=help_text,
                            **keywords)


def _parser():
    parser = _Parser(prog="clip-edge", description=_description(None),
                     formatter_class=_Formatter)
    _add_global_options(parser, True)
    options = _Parser(add_help=False)
    _add_global_options(options, False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{embed,classify,verify}")

    def command(name, help_text):
        return commands.add_parser(name, parents=[options], help=help_text, description=_description(name),
                                   formatter_class=_Formatter)

    embed = command("embed", "embed images or captions to .npy (+ the row -> file list)")
    embed.add_argument("folder", metavar="FOLDER", help="export folder (with manifest.json)")
    source = embed.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="IMAGE", help="image files or folders")
    source.add_argument("--texts", metavar="FILE", help="a UTF-8 text file, one caption per line")
    embed.add_argument("--out", "--output", "-o", required=True, metavar="FILE.npy",
                       help="output .npy (unit-norm rows)")
    embed.add_argument("--json", action="store_true", help="print what was written as JSON")

    classify = command("classify", "zero-shot classification of images")
    classify.add_argument("folder", metavar="FOLDER", help="export folder (with manifest.json)")
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    classify.add_argument("--labels", nargs="+", required=True, metavar="LABEL",
                          help="'cat dog', 'cat,dog' or a file with one label per line")
    classify.add_argument("--template", action="append", metavar="TEXT",
                          help="prompt with one {}, e.g. 'a photo of a {}.' (repeatable; several are "
                               "averaged; default 'a photo of a {}.')")
    classify.add_argument("--json", action="store_true", help="one JSON object per image")

    verify = command("verify", "check the folder's conformance embeddings; exit 1 below the thresholds")
    verify.add_argument("folder", metavar="FOLDER", help="export folder (with manifest.json)")
    return parser


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_output(out):
    """`--out` with `.npy` appended as numpy would; its folder must exist (checked before any work)."""
    out = out if out.endswith(".npy") else out + ".npy"
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {out}: the folder {folder} does not exist.")
    if os.path.isdir(out):
        raise ValueError(f"--out {out}: is a folder; give a file name ending in .npy.")
    return out


def _write(out, embeddings, sidecar, rows):
    try:
        np.save(out, embeddings)
        with open(sidecar, "w", encoding="utf-8") as file:
            file.writelines(row + "\n" for row in rows)
    except OSError as error:
        raise ValueError(f"--out {out}: {error.strerror or error}.") from error


def _embed(args, load):
    out = _check_output(args.out)
    if args.images:
        paths = image_paths(args.images, "--images")
        broken = [path for path, _ in paths if "\n" in path or "\r" in path]
        if broken:
            raise ValueError(f"--images {broken[0]!r}: a file name with a line break cannot be listed in "
                             "the .files.txt; rename it.")
        edge = load(args)
        reader, rows, chunks = ImageReader(edge, "--images", USER_ERRORS), [], []
        for batch in _batches(paths, args.batch_size):
            kept, pixels = reader(batch)
            if kept:
                rows += kept
                chunks.append(edge.encode_pixels(pixels, True))
        if not rows:
            raise ValueError(f"--images {' '.join(args.images)}: none of the images could be read; "
                             + reader.report())
        sidecar, skipped = out[: -len(".npy")] + ".files.txt", reader.report()
    else:
        rows = read_lines(args.texts, "--texts")
        edge = load(args)
        chunks = [edge.encode_texts(b, normalized=True) for b in _batches(rows, args.batch_size)]
        sidecar, skipped = out[: -len(".npy")] + ".texts.txt", None
    embeddings = np.concatenate(chunks)
    _write(out, embeddings, sidecar, rows)
    if args.json:
        print(json.dumps({"out": out, "rows": sidecar, "shape": list(embeddings.shape)}))
    else:
        print(f"wrote {out} ({embeddings.shape[0]} x {embeddings.shape[1]}, unit-norm rows) and "
              f"{sidecar} (line i: row i)")
    return skipped


def _classify(args, load):
    labels = parse_labels(args.labels)
    paths = image_paths(args.images, "IMAGE")
    edge = load(args)
    try:
        classes = edge.class_embeddings(labels, args.template)
    except ValueError as error:
        raise ValueError(f"--template: {error}") from error
    reader = ImageReader(edge, "IMAGE", USER_ERRORS)
    width, classified = max(len(label) for label in labels), 0
    for batch in _batches(paths, args.batch_size):
        kept, pixels = reader(batch)
        if not kept:
            continue
        classified += len(kept)
        logits = edge.logit_scale * edge.encode_pixels(pixels, True) @ classes.T
        probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        for path, row in zip(kept, probabilities):
            ranked = [(labels[i], float(row[i])) for i in np.argsort(-row, kind="stable")]
            if args.json:
                print(json.dumps({"image": path, "label": ranked[0][0], "probability": ranked[0][1],
                                  "probabilities": dict(ranked)}))
            else:
                print(path)
                print("\n".join(f"  {label:<{width}}  {p:.4f}" for label, p in ranked))
    if not classified:
        raise ValueError(f"IMAGE {' '.join(args.images)}: none of the images could be read; {reader.report()}")
    if len(labels) == 1:
        print(f"clip-edge: warning: one label ({labels[0]!r}): its probability is always 1; "
              "give two or more.", file=sys.stderr)
    return reader.report()


def _verify(args, load):
    """Prints the conformance lines; returns 1 on FAIL."""
    result = load(args).verify()
    print("\n".join(result.lines()))
    return None if result.passed else 1


COMMANDS = {"embed": _embed, "classify": _classify, "verify": _verify}


def _quiet_onnxruntime(verbose):
    """ONNX Runtime logs warnings (graph optimisation notes) to stderr: errors only unless --verbose."""
    try:
        import onnxruntime
    except ImportError:  # the LiteRT-only install
        return
    onnxruntime.set_default_logger_severity(2 if verbose else 3)  # 2: its default, warnings


@contextlib.contextmanager
def _native_stderr_silenced(silenced):
    """Native code's stderr (LiteRT's C++ INFO lines) to /dev/null; Python's `sys.stderr` still shows."""
    if not silenced:
        yield
        return
    sys.stderr.flush()
    saved, python_stderr = os.dup(2), sys.stderr
    try:
        sys.stderr = open(saved, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (closed below)
        with open(os.devnull, "w", encoding="utf-8") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _open(args):
    """The `ClipEdge` for FOLDER; its errors name the folder."""
    from clip_edge.runtime import ClipEdge

    if not os.path.isdir(args.folder):
        raise ValueError(f"FOLDER {args.folder}: no such folder; give the folder `keras-clip export` wrote.")
    preprocess = None if args.preprocess == "auto" else args.preprocess
    try:
        return ClipEdge(args.folder, runtime=args.runtime, precision=args.precision, preprocess=preprocess)
    except USER_ERRORS as error:
        raise ValueError(f"FOLDER {args.folder}: {error}") from error


def main(argv=None):
    """Entry point; returns the exit code (2 on bad input, 1 when `verify` fails, 130 on Ctrl-C)."""
    args = _parser().parse_args(argv)
    try:
        _quiet_onnxruntime(args.verbose)
        with _native_stderr_silenced(not args.verbose):
            result = COMMANDS[args.command](args, _open)
    except USER_ERRORS as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"clip-edge: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clip-edge: interrupted", file=sys.stderr)
        return 130
    if isinstance(result, str):  # images skipped along the way
        print(f"clip-edge: {result}", file=sys.stderr)
        return 0
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
