"""`keras-clip export`: the command-line front of `export_towers`.

Example:
    $ KERAS_BACKEND=tensorflow keras-clip export vit_b32 --output out/ --fp16 --int8
    $ keras-clip export ./my_preset --formats onnx,litert --opset 18 --check
"""

import json
import os

PARSER = {
    "help": "Export the image and text towers to ONNX / SavedModel / LiteRT.",
    "description": (
        "Export a CLIP model's towers separately to ONNX, TensorFlow SavedModel and "
        "LiteRT, with the tokenizer and image preprocessing as ONNX graphs, "
        "conformance.npz (checked on a device by `clip-edge verify`) and "
        "manifest.json. The Keras backend (KERAS_BACKEND) picks the route: "
        "tensorflow (tf2onnx), jax (jax2onnx, jax2tf) or torch (torch.onnx dynamo; "
        "SavedModels through a TensorFlow subprocess)."
    ),
}


def add_arguments(parser):
    """Adds the export's options to the argparse parser `parser`."""
    parser.add_argument("preset", help="preset name, preset folder or checkpoint file")
    parser.add_argument("--output", "-o", default=None, help="output folder (default: <name>_export)")
    parser.add_argument(
        "--formats",
        default="saved_model,onnx,litert",
        help="comma-separated subset of saved_model,onnx,litert (default: all three)",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    parser.add_argument("--fp16", action="store_true", help="also write the fp16 variants (<tower>.fp16.onnx / .fp16.tflite)")
    parser.add_argument("--int8", action="store_true", help="also write the int8 variants (<tower>.int8.onnx / .int8.tflite)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="for a built-in name: random weights instead of downloading",
    )
    parser.add_argument(
        "--check", action="store_true", help="compare every exported file with Keras and print figures"
    )


def run(args):
    """Runs the export that `args` (from `add_arguments`' parser) describes; returns 0."""
    from keras_clip.export.towers import export_towers
    from keras_clip.presets import from_preset, list_presets

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    model = from_preset(args.preset, weights=not args.random_weights)  # paths: their weights
    name = args.preset
    if name not in list_presets():
        name = os.path.splitext(os.path.basename(os.path.normpath(name)))[0]
    output = args.output or f"{name}_export"
    manifest = export_towers(
        model, output, formats=formats, opset=args.opset, fp16=args.fp16, int8=args.int8,
        architecture=name,
    )
    summary = {
        "output": output,
        "routes": manifest["exporter"]["routes"],
        "seconds": manifest["exporter"]["seconds"],
        "megabytes": _sizes(output, manifest),
    }
    if args.check:
        summary["parity"] = check_export(model, output, manifest)
    print(json.dumps(summary, indent=2))
    return 0


def check_export(model, directory, manifest):
    """Parity figures (batch 1 and 5) of every exported file against Keras."""
    from keras_clip.export.parity import onnx_parity, saved_model_parity

    figures = {}
    for tower, variants in manifest.get("onnx", {}).items():
        for variant, file in variants.items():
            figures[file] = onnx_parity(model, os.path.join(directory, file), tower)
    for tower, folder in manifest.get("saved_model", {}).items():
        if tower == "text_encoder_strings":  # strings in: its parity is tested on the corpus
            continue
        figures[folder + "/"] = saved_model_parity(model, os.path.join(directory, folder), tower)
    return figures


def _sizes(directory, manifest):
    sizes = {}
    for path, entry in manifest["files"].items():
        top = path.split("/")[0]
        sizes[top] = sizes.get(top, 0) + entry["bytes"]
    return {k: round(v / 1e6, 2) for k, v in sorted(sizes.items())}
