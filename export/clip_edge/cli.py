"""`python -m clip_edge` / `clip-edge`: embed images or texts, classify images.

Examples:
    $ python -m clip_edge embed vit_b32_export --images photos/ --out photos.npy
    $ python -m clip_edge embed vit_b32_export --texts captions.txt --out captions.npy
    $ python -m clip_edge classify vit_b32_export --labels cat,dog,car photos/*.jpg
"""

import argparse
import json
import os
import sys

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
        raise SystemExit(f"No images found in {items}.")
    return paths


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def main(argv=None):
    """Entry point."""
    from clip_edge.runtime import ClipEdge

    parser = argparse.ArgumentParser(prog="clip-edge", description="CLIP on ONNX Runtime.")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--batch-size", type=int, default=16)
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser("embed", help="embed images or texts to .npy")
    embed.add_argument("folder", help="export folder (manifest.json)")
    source = embed.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", help="image files or folders")
    source.add_argument("--texts", help="a text file, one caption per line")
    embed.add_argument("--out", required=True, help="output .npy (unit-norm rows)")
    classify = commands.add_parser("classify", help="zero-shot classification")
    classify.add_argument("folder")
    classify.add_argument("images", nargs="+", help="image files or folders")
    classify.add_argument("--labels", required=True, help="comma-separated labels, or a file with one per line")
    classify.add_argument("--template", action="append", help="e.g. 'a photo of a {}.' (repeatable)")
    args = parser.parse_args(argv)

    edge = ClipEdge(args.folder, precision=args.precision)
    if args.command == "embed":
        if args.images:
            paths = _image_paths(args.images)
            chunks = [edge.encode_images(b, normalized=True) for b in _batches(paths, args.batch_size)]
        else:
            with open(args.texts, encoding="utf-8") as file:
                lines = [line.rstrip("\n") for line in file if line.strip()]
            chunks = [edge.encode_texts(b, normalized=True) for b in _batches(lines, args.batch_size)]
        embeddings = np.concatenate(chunks)
        np.save(args.out, embeddings)
        print(json.dumps({"out": args.out, "shape": list(embeddings.shape)}))
        return 0
    if os.path.isfile(args.labels):
        with open(args.labels, encoding="utf-8") as file:
            labels = [line.strip() for line in file if line.strip()]
    else:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    paths = _image_paths(args.images)
    classes = edge.class_embeddings(labels, args.template)
    for batch in _batches(paths, args.batch_size):
        logits = edge.logit_scale * edge.encode_images(batch, normalized=True) @ classes.T
        logits -= logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        for path, row in zip(batch, probabilities):
            best = int(np.argmax(row))
            print(json.dumps({"image": path, "label": labels[best], "probability": float(row[best])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
