"""`export_towers`: both towers of one model into one folder, with its manifest.

Writes, per format: ONNX `image_encoder.onnx` / `text_encoder.onnx` (plus
`.fp16.onnx` / `.int8.onnx` on request) and the pre-processing graphs
`text_tokenizer.onnx` / `image_preprocessor.onnx`; SavedModels
`image_encoder/`, `text_encoder/` (plain TensorFlow) and
`text_encoder_strings/` (needs tensorflow_text); LiteRT `<tower>.tflite` (plus
`.fp16.tflite` / `.int8.tflite`). Always: the tokenizer vocabulary,
`conformance.npz` and `manifest.json`; see `keras_clip.export`.

The folder is staged and renamed into place at the end, and only a new, empty
or previously exported folder is replaced without `overwrite=True` (see
`export.destination`); the previous contents are removed, so no stale files remain.

Example:
    >>> from keras_clip.export import export_towers
    >>> manifest = export_towers(model, "vit_b32_export", int8=True)  # doctest: +SKIP
"""

import importlib.metadata
import os
import shutil
import time
from functools import partial

import keras

from keras_clip.export import conformance
from keras_clip.export.destination import check_destination, publish, staging_folder
from keras_clip.export.litert import export_litert, litert_from_saved_models
from keras_clip.export.manifest import (
    MANIFEST_FILE,
    VOCABULARY_FILE,
    file_entries,
    model_values,
    write_manifest,
)
from keras_clip.export.onnx_export import DEFAULT_OPSET, TOWERS, export_onnx
from keras_clip.export.preprocessor_graph import (
    export_bytes_preprocessor_graph,
    export_preprocessor_graph,
)
from keras_clip.export.quantize import INT8_METHODS, to_fp16, to_int8, variant_path
from keras_clip.export.saved_model import STRINGS, export_saved_models
from keras_clip.export.tokenizer_graph import export_tokenizer_graph

FORMATS = ("saved_model", "onnx", "litert")
GRAPH_FILES = {"text_tokenizer": "text_tokenizer.onnx", "image_preprocessor": "image_preprocessor.onnx",
               "image_bytes_preprocessor": "image_bytes_preprocessor.onnx"}


def export_towers(
    model,
    directory,
    formats=FORMATS,
    opset=DEFAULT_OPSET,
    fp16=False,
    int8=False,
    architecture=None,
    towers=TOWERS,
    overwrite=False,
    source=None,
    phases=None,
    calibration_images=None,
):
    """Exports `model`'s towers into `directory`; returns the manifest (a dict).

    Args:
        model: a `keras_clip.CLIP`.
        directory: output folder: new, empty, or a previous export (replaced
            whole, so no stale files remain).
        formats: any of `"saved_model"`, `"onnx"`, `"litert"` (default: all).
        opset: ONNX opset of the towers, >= 17 (the pre-processing graphs use their own).
        fp16: also write the fp16 variants (`<tower>.fp16.onnx` / `.fp16.tflite`).
        int8: also write the int8 variants: True or "dynamic" (dynamic
            quantization), "static" (calibrated QDQ ONNX; LiteRT stays dynamic).
        architecture: name recorded in the manifest (defaults to the config's).
        towers: which towers, `("image_encoder", "text_encoder")` by default.
        overwrite: replace a non-empty `directory` that is not a previous export.
        source: where the weights came from, recorded as the manifest's
            `source` (see `manifest.source_record`); default: unknown.
        phases: a `keras_clip.phases.Phases` announcing each step (its names
            include `export_phases(...)`); None: silent.
        calibration_images: folder of images for static int8 (None: generated).

    Raises:
        OSError: `directory` is a file, or a non-empty folder that is not a
            previous export (without `overwrite`).

    Example:
        >>> export_towers(model, "out", formats=("onnx",), fp16=True)  # doctest: +SKIP
    """
    from keras_clip.models import CLIP

    if not isinstance(model, CLIP):
        raise ValueError(f"`model` must be a keras_clip.CLIP, received {type(model).__name__}.")
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"`formats` must be a non-empty subset of {FORMATS}, received {formats}.")
    towers = (towers,) if isinstance(towers, str) else tuple(towers)
    if not towers or set(towers) - set(TOWERS):
        raise ValueError(f"`towers` must be a non-empty subset of {TOWERS}, received {towers}.")
    if (fp16 or int8) and not {"onnx", "litert"} & set(formats):
        raise ValueError("fp16/int8 variants are ONNX or LiteRT files: include 'onnx' or 'litert' "
                         "in `formats`.")
    int8 = "dynamic" if int8 is True else int8
    if int8 and int8 not in INT8_METHODS:
        raise ValueError(f"`int8` must be False, True or one of {INT8_METHODS}, received {int8!r}.")
    check_destination(directory, overwrite)
    announce = phases or (lambda name: None)
    staging = staging_folder(directory)
    try:
        values = _write_folder(model, staging, formats, opset, fp16, int8, architecture, towers,
                               source, announce, calibration_images)
        publish(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return values


def export_phases(formats=FORMATS, towers=TOWERS, fp16=False, int8=False):
    """The names of `export_towers`' steps for these options, in order.

    Example:
        >>> export_phases(("onnx",), ("text_encoder",), int8=True)[:2]
        ['writing text_encoder.onnx', 'quantizing text_encoder.onnx to int8']
    """
    names = []
    for tower in towers:
        if "onnx" in formats:
            names.append(f"writing {tower}.onnx")
            names += [f"converting {tower}.onnx to fp16"] if fp16 else []
            names += [f"quantizing {tower}.onnx to int8"] if int8 else []
    names += ["writing the pre-processing graphs"] if "onnx" in formats else []
    names += ["writing the SavedModels"] if "saved_model" in formats else []
    names += ["writing the LiteRT files"] if "litert" in formats else []
    return names + [f"writing {conformance.CONFORMANCE_FILE} and {MANIFEST_FILE}"]


def _write_folder(model, directory, formats, opset, fp16, int8, architecture, towers, source,
                  announce, calibration_images=None):
    """Writes every file of the export into the (new, empty) `directory`; returns the manifest."""
    values = model_values(model, architecture)
    metadata = _onnx_metadata(values)
    onnx_files, saved_models, seconds, routes = {}, {}, {}, {}
    for name in towers:
        if "onnx" in formats:
            path = os.path.join(directory, f"{name}.onnx")
            announce(f"writing {name}.onnx")
            start = time.perf_counter()
            routes["onnx"] = export_onnx(model, name, path, opset=opset, metadata=dict(metadata, tower=name))
            seconds[f"{name}.onnx"] = time.perf_counter() - start
            onnx_files[name] = {"fp32": os.path.basename(path)}
            quantize = partial(to_int8, method=int8, calibration_images=calibration_images)
            for variant, wanted, convert in (("fp16", fp16, to_fp16), ("int8", int8, quantize)):
                if wanted:
                    announce(f"{'quantizing' if variant == 'int8' else 'converting'} "
                             f"{name}.onnx to {variant}")
                    start = time.perf_counter()
                    convert(path, variant_path(path, variant))
                    seconds[f"{name}.{variant}.onnx"] = time.perf_counter() - start
                    onnx_files[name][variant] = os.path.basename(variant_path(path, variant))
    graphs = {}
    if "onnx" in formats:
        announce("writing the pre-processing graphs")
        start = time.perf_counter()
        graphs = _write_graphs(model, directory, towers)
        seconds["graphs"] = time.perf_counter() - start
    if "saved_model" in formats:
        names = list(towers) + ([STRINGS] if "text_encoder" in towers else [])
        saved_models = {name: name for name in names}
        announce("writing the SavedModels")
        start = time.perf_counter()
        routes["saved_model"] = export_saved_models(model, names, directory)
        seconds["saved_model"] = time.perf_counter() - start
    litert_files = {}
    if "litert" in formats:
        announce("writing the LiteRT files")
        start = time.perf_counter()
        if "saved_model" in formats and keras.backend.backend() != "jax":
            # convert the TensorFlow SavedModels just written (jax2tf's do not convert)
            litert_files = litert_from_saved_models(directory, directory, towers, fp16, int8)
        else:
            litert_files = export_litert(model, directory, towers, fp16=fp16, int8=int8)
        seconds["litert"] = time.perf_counter() - start
        routes["litert"] = "tf.lite converter" + ("" if keras.backend.backend() == "tensorflow"
                                                  else " (TensorFlow subprocess)")

    from keras_clip.tokenizer import DEFAULT_VOCABULARY

    announce(f"writing {conformance.CONFORMANCE_FILE} and {MANIFEST_FILE}")
    shutil.copyfile(DEFAULT_VOCABULARY, os.path.join(directory, VOCABULARY_FILE))
    checked = conformance.write_conformance(
        model, os.path.join(directory, conformance.CONFORMANCE_FILE), towers)
    listed = [VOCABULARY_FILE, conformance.CONFORMANCE_FILE, *graphs.values()]
    for variants in (*onnx_files.values(), *litert_files.values()):
        listed += list(variants.values())
    listed += list(saved_models.values())
    values.update(
        {
            "onnx": onnx_files,
            "graphs": graphs,
            "litert": litert_files,
            "saved_model": saved_models,
            "conformance": {
                "file": conformance.CONFORMANCE_FILE,
                "towers": list(checked),
                "thresholds": conformance.THRESHOLDS,
                "token_agreement": conformance.TOKEN_AGREEMENT,
            },
            "files": file_entries(directory, listed),
            "source": source or {"random_weights": None},  # None: not told
            **({"int8_method": {"onnx": int8, "litert": "dynamic"}} if int8 else {}),
            "exporter": {
                "backend": keras.backend.backend(),
                "routes": routes,
                "opset": opset,
                "versions": _versions(),
                "seconds": {k: round(v, 2) for k, v in seconds.items()},
            },
        }
    )
    write_manifest(directory, values)
    return values


def _write_graphs(model, directory, towers):
    """The ONNX pre-processing graphs for `towers`: `{graph name: file name}`."""
    graphs = {}
    if "text_encoder" in towers:
        name = GRAPH_FILES["text_tokenizer"]
        export_tokenizer_graph(os.path.join(directory, name), model.context_length)
        graphs["text_tokenizer"] = name
    if "image_encoder" in towers:
        name = GRAPH_FILES["image_preprocessor"]
        pre = model.config.preprocessing
        export_preprocessor_graph(os.path.join(directory, name), model.image_size, pre.mean,
                                  pre.std, pre.resize_mode)
        graphs["image_preprocessor"] = name
        name = GRAPH_FILES["image_bytes_preprocessor"]
        export_bytes_preprocessor_graph(os.path.join(directory, name), model.image_size, pre.mean,
                                        pre.std, pre.resize_mode)
        graphs["image_bytes_preprocessor"] = name
    return graphs


def _onnx_metadata(values):
    """The manifest's model values, flat, for ONNX `metadata_props`."""
    image, text = values["image"], values["text"]
    return {
        "keras_clip.manifest": {k: v for k, v in values.items() if k != "config"},
        "format_version": str(values["format_version"]),
        "architecture": values["architecture"],
        "embed_dim": str(values["embed_dim"]),
        "logit_scale": repr(values["logit_scale"]),
        "image_size": str(image["size"]),
        "mean": image["mean"],
        "std": image["std"],
        "resize": image["resize"],
        "resize_mode": image["resize_mode"],
        "context_length": str(text["context_length"]),
        "start_token_id": str(text["start_token_id"]),
        "end_token_id": str(text["end_token_id"]),
        "config": values["config"],
    }


def _versions():
    names = ("keras-clip", "keras", "tensorflow", "tf2onnx", "jax", "jax2onnx", "torch",
             "onnx", "onnxscript", "onnxruntime", "onnxconverter-common")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found
