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
        "manifest.json (which also records the weights' source, its SHA-256 and whether "
        "they are random). The Keras backend (KERAS_BACKEND) picks the route: "
        "tensorflow (tf2onnx), jax (jax2onnx, jax2tf) or torch (torch.onnx dynamo; "
        "SavedModels through a TensorFlow subprocess). Each step is announced as "
        "[k/N]; the folder appears only when the export is complete.\n\n"
        "Example:\n"
        "  KERAS_BACKEND=tensorflow keras-clip export vit_b32 -o vit_b32_export --int8 --check"
    ),
}
FORMATS = ("saved_model", "onnx", "litert")


def add_arguments(parser):
    """Adds the export's options to the argparse parser `parser`."""
    parser.add_argument("preset", help="preset name (`keras-clip presets`), preset folder or "
                        "checkpoint file")
    parser.add_argument("--output", "-o", default=None,
                        help="output folder; default: <name>_export")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty output folder that is not a previous export "
                             "(a previous export is always replaced whole)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated subset of " + ",".join(FORMATS))
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    parser.add_argument("--fp16", action="store_true",
                        help="also write the fp16 variants (<tower>.fp16.onnx / .fp16.tflite)")
    parser.add_argument("--int8", nargs="?", const="dynamic", default=None,
                        choices=("dynamic", "static"),
                        help="also write the int8 variants (<tower>.int8.onnx / .int8.tflite): "
                             "`--int8` or `--int8 dynamic` quantizes activations at run time; "
                             "`--int8 static` calibrates them (QDQ ONNX, integer kernels; "
                             "LiteRT stays dynamic)")
    parser.add_argument("--calibration-images", metavar="DIR", default=None,
                        help="with --int8 static: a folder of images to calibrate the image "
                             "tower on (default: generated images)")
    parser.add_argument("--random-weights", action="store_true",
                        help="for a built-in name: random weights instead of downloading "
                             "(recorded in manifest.json)")
    parser.add_argument("--check", action="store_true",
                        help="compare every exported file with Keras; ends with one PASS/FAIL "
                             "line per file against the manifest's thresholds")
    parser.add_argument("--json", action="store_true",
                        help="print the closing summary (and --check figures) as JSON")


def run(args):
    """Runs the export that `args` (from `add_arguments`' parser) describes; returns 0 or 1."""
    from keras_clip.export.destination import check_destination
    from keras_clip.phases import Phases
    from keras_clip.presets.catalog import check_preset_or_path, list_presets

    check_preset_or_path(args.preset, "preset")  # before any backend is imported
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if not formats or set(formats) - set(FORMATS):
        raise ValueError(f"--formats must be a comma-separated subset of {','.join(FORMATS)}, "
                         f"received {args.formats!r}.")
    name = args.preset
    if name not in list_presets():
        name = os.path.splitext(os.path.basename(os.path.normpath(name)))[0]
    output = args.output or f"{name}_export"
    if args.calibration_images and args.int8 != "static":
        raise ValueError("--calibration-images needs --int8 static.")
    if args.calibration_images:
        from keras_clip.export.calibration import folder_images

        folder_images(args.calibration_images)  # before the model loads
    check_destination(output, args.overwrite)
    from keras_clip.export.manifest import source_record
    from keras_clip.export.towers import export_phases, export_towers

    random_weights = args.random_weights and args.preset in list_presets()
    phases = Phases(["loading the model", *export_phases(formats, fp16=args.fp16, int8=args.int8),
                     *(["checking every file against Keras"] if args.check else [])],
                    verbose=not args.json)
    phases("loading the model")
    model = _load(args.preset, random_weights)
    source = source_record(args.preset, random_weights)
    manifest = export_towers(model, output, formats=formats, opset=args.opset, fp16=args.fp16,
                             int8=args.int8, architecture=name, overwrite=args.overwrite,
                             source=source, phases=phases,
                             calibration_images=args.calibration_images)
    summary = {"output": output, "routes": manifest["exporter"]["routes"],
               "seconds": manifest["exporter"]["seconds"], "megabytes": _sizes(manifest)}
    verdicts = []
    if args.check:
        phases("checking every file against Keras")
        summary["parity"] = check_export(model, output, manifest)
        verdicts = check_verdicts(summary["parity"], manifest)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        total = sum(summary["megabytes"].values())
        print(f"wrote {output}/ ({total:.1f} MB, {len(manifest['files'])} files; "
              f"weights: {_describe(source)})")
        for line, _ in verdicts:
            print(line)
    return 0 if all(passed for _, passed in verdicts) else 1


def _load(spec, random_weights):
    from keras_clip.presets import from_preset

    return from_preset(spec, weights=not random_weights)  # paths: their weights


def _describe(source):
    if source["random_weights"]:
        return "random (--random-weights)"
    where = source.get("preset") or source.get("path")
    return f"{where}, sha256 {source['sha256'][:12]}…" if source["sha256"] else where


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


def check_verdicts(figures, manifest):
    """`[(line, passed)]`: each checked file's smallest cosine against the manifest threshold.

    Example:
        >>> check_verdicts({"text_encoder.onnx": {"min_cosine": 0.99999}},
        ...                manifest)  # doctest: +SKIP
        [('PASS  text_encoder.onnx  min cosine 0.999990 >= 0.9999 (fp32 text)', True)]
    """
    thresholds = manifest["conformance"]["thresholds"]
    width = max(len(file) for file in figures)
    verdicts = []
    for file, values in figures.items():
        precision = next((p for p in ("fp16", "int8") if f".{p}." in file), "fp32")
        tower = "image" if file.startswith("image") else "text"
        threshold = thresholds[precision][tower]
        cosine = values["min_cosine"]
        passed = bool(cosine >= threshold)
        verdicts.append((f"{'PASS' if passed else 'FAIL'}  {file:<{width}}  min cosine "
                         f"{cosine:.6f} {'>=' if passed else '<'} {threshold} "
                         f"({precision} {tower})", passed))
    return verdicts


def _sizes(manifest):
    sizes = {}
    for path, entry in manifest["files"].items():
        top = path.split("/")[0]
        sizes[top] = sizes.get(top, 0) + entry["bytes"]
    return {k: round(v / 1e6, 2) for k, v in sorted(sizes.items())}
