"""The one-command demo: train a small CLIP on synthetic shapes, evaluate, plot, export.

Runs offline on a laptop CPU in a few minutes: `model.fit` on the bundled
synthetic captioned shapes, zero-shot accuracy (prompt ensembling) on seen
and on held-out colour-shape combinations, a linear probe, retrieval recall,
PNG plots, and both towers exported to ONNX (fp32, dynamic int8, and static
int8 calibrated on training images in `int8_static/`) and run with the
Keras-free edge runtime.

Example:
    $ keras-clip demo --output demo_output
    >>> from keras_clip.demo import run_demo
    >>> summary = run_demo("demo_output", samples=2048, epochs=1)  # doctest: +SKIP
"""

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np

from keras_clip.phases import Phases

DEMO_CONFIG = {
    "name": "demo_shapes_clip",
    "embed_dim": 64,
    "vision": {"type": "vit", "image_size": 32, "width": 96, "layers": 2, "patch_size": 8,
               "heads": 2},
    "text": {"width": 64, "layers": 2, "heads": 2, "context_length": 20, "vocab_size": 49408},
}
PROMPTS = ("a photo of a {}.", "a {}", "a {} on a dark background")


@dataclass
class Evaluation:
    """What `_evaluate` measured, and what the plots and the edge comparison reuse.

    Attributes:
        metrics: the figures that go into `summary.json`.
        class_names: the seen classes, in label order.
        seen_images: preprocessed images of the seen classes `(N, S, S, 3)`.
        seen_labels: their labels `(N,)`.
        predictions: Keras' zero-shot predictions for them `(N,)`.
        pairs: `PairedData` (images and captions) for retrieval and the similarity plot.
        all_class_names: seen and held-out classes, the confusion matrix's order.
        heldout_class_names: the classes training never saw.
        confusion: `(labels, predictions)` of seen and held-out images among all classes.
    """

    metrics: dict
    class_names: list
    seen_images: np.ndarray
    seen_labels: np.ndarray
    predictions: np.ndarray
    pairs: object
    all_class_names: list
    heldout_class_names: list
    confusion: tuple


def _train(model, samples, epochs, batch_size, learning_rate, seed, verbose):
    import keras

    from keras_clip import CLIPTokenizer, data
    from keras_clip.training import build_optimizer

    tokenizer = CLIPTokenizer(context_length=model.context_length)
    shapes = data.SyntheticShapes(image_size=model.image_size, seed=seed, split="train")
    dataset = shapes.as_tf_dataset(batch_size, num_samples=samples, training=True, seed=seed,
                                   tokenizer=tokenizer).cache()
    steps = -(-samples // batch_size)
    model.compile(optimizer=build_optimizer(
        model, learning_rate, total_steps=steps * epochs, warmup_steps=min(30, steps * epochs - 1),
        weight_decay=0.1))
    history = model.fit(dataset, epochs=epochs, verbose=verbose, shuffle=False,  # tf.data shuffles
                        callbacks=[keras.callbacks.TerminateOnNaN()])
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def _evaluate(model, eval_samples, seed):
    from keras_clip import evaluation

    seen = evaluation.synthetic_classification(eval_samples, model.image_size, seed, "train")
    heldout = evaluation.synthetic_classification(eval_samples, model.image_size, seed, "heldout")
    everything = evaluation.synthetic_classification(eval_samples, model.image_size, seed, "all")
    seen_clf = evaluation.ZeroShotClassifier(model, seen.class_names, templates=PROMPTS)
    all_clf = evaluation.ZeroShotClassifier(model, everything.class_names, templates=PROMPTS)
    index = {name: i for i, name in enumerate(everything.class_names)}
    heldout_labels = np.array([index[heldout.class_names[k]] for k in heldout.labels])
    probe_train = evaluation.synthetic_classification(eval_samples, model.image_size, seed + 1)
    probe = evaluation.evaluate_linear_probe(model, probe_train, everything)
    pairs = evaluation.synthetic_pairs(min(eval_samples, 500), model.image_size, seed + 2)
    retrieval = evaluation.evaluate_retrieval(model, pairs)
    metrics = {
        "zero_shot_seen_top1": seen_clf.evaluate(seen.images, seen.labels)["top1"],
        "zero_shot_heldout_top1_among_all": all_clf.evaluate(heldout.images, heldout_labels)["top1"],
        "chance_heldout_among_all": 1.0 / len(everything.class_names),
        "linear_probe_top1": probe["accuracy"],
        "retrieval": retrieval,
    }
    seen_labels = np.array([index[seen.class_names[k]] for k in seen.labels])
    confusion = (np.concatenate([seen_labels, heldout_labels]),
                 all_clf.predict(np.concatenate([seen.images, heldout.images])))
    return Evaluation(metrics, seen.class_names, seen.images, seen.labels,
                      seen_clf.predict(seen.images), pairs, everything.class_names,
                      heldout.class_names, confusion)


def _plots(model, history, results, output_dir):
    from keras_clip import evaluation, plots
    from keras_clip.preprocessing import MEAN, STD

    paths = {name: os.path.join(output_dir, f"{name}.png")
             for name in ("training_curves", "similarity_matrix", "zero_shot_confusion")}
    plots.training_curves(history, paths["training_curves"])
    images, captions = results.pairs.images[:8], results.pairs.captions[:8]
    similarity = evaluation.encode_images(model, images, normalize=True) @ \
        evaluation.encode_texts(model, captions, normalize=True).T
    thumbnails = np.clip(images * np.asarray(STD) + np.asarray(MEAN), 0, 1)  # undo the normalisation
    plots.similarity_matrix(similarity, thumbnails, captions, paths["similarity_matrix"])
    plots.confusion_matrix(*results.confusion, results.all_class_names, results.heldout_class_names,
                           paths["zero_shot_confusion"])
    return {"curves": paths["training_curves"], "similarity": paths["similarity_matrix"],
            "confusion": paths["zero_shot_confusion"]}


def _export_and_compare(model, results, output_dir, seed, overwrite=False):
    """Exports fp32 and int8 ONNX towers and compares the edge runtime with Keras.

    `int8` is the export's dynamic int8; `int8_static` is static (calibrated)
    int8 of the same fp32 towers in `int8_static/`, its image ranges
    calibrated on `CALIBRATION_IMAGES` of the training images.
    """
    from clip_edge import ClipEdge  # the edge package: pip install ./export

    from keras_clip import evaluation
    from keras_clip.export import export_towers

    folder = os.path.join(output_dir, "export")
    export_towers(model, folder, formats=("onnx",), int8=True, overwrite=overwrite,
                  source={"random_weights": False, "trained_by": "keras-clip demo"})
    images, captions = results.pairs.images[:64], results.pairs.captions[:64]
    keras_figures = (evaluation.encode_images(model, images, normalize=True),
                     evaluation.encode_texts(model, captions, normalize=True))
    comparison = {"folder": folder}
    for precision in ("fp32", "int8"):
        edge = ClipEdge(folder, precision=precision)
        comparison[precision] = _agreement(
            lambda pixels, edge=edge: edge.encode_pixels(pixels, normalized=True),
            lambda texts, edge=edge: edge.encode_texts(texts, normalized=True),
            keras_figures, results)
    started = time.time()
    image_tower, text_tower = _static_int8(folder, output_dir, model.image_size, seed)
    tokenize = ClipEdge(folder).tokenize
    comparison["int8_static"] = _agreement(
        lambda pixels: image_tower.run(pixels)[1], lambda texts: text_tower.run(tokenize(texts))[1],
        keras_figures, results)
    comparison["int8_static"]["seconds"] = round(time.time() - started, 1)
    return comparison


CALIBRATION_IMAGES = 256


def _static_int8(folder, output_dir, image_size, seed):
    """Static int8 towers of the export in `folder`, written to `output_dir/int8_static/`.

    The image tower is calibrated on the first `CALIBRATION_IMAGES` training
    images (PNG files in `int8_static/calibration_images/`, the
    `--calibration-images` folder of `keras-clip export --int8 static`); on the
    generated default set, agreement falls to about 97.5%.
    """
    from clip_edge.towers import OnnxTower
    from PIL import Image

    from keras_clip import data
    from keras_clip.export.quantize import to_int8, variant_path

    target = os.path.join(output_dir, "int8_static")
    images = os.path.join(target, "calibration_images")
    if os.path.isdir(target):  # a previous run's (overwrite=True)
        shutil.rmtree(target)
    os.makedirs(images)
    pixels, _, _ = data.SyntheticShapes(image_size, seed=seed, split="train").sample(
        CALIBRATION_IMAGES)
    for index, image in enumerate(pixels):
        Image.fromarray(image).save(os.path.join(images, f"{index:04d}.png"))
    towers = []
    for name, input_name in (("image_encoder", "images"), ("text_encoder", "token_ids")):
        path = os.path.join(target, os.path.basename(variant_path(f"{name}.onnx", "int8")))
        to_int8(os.path.join(folder, f"{name}.onnx"), path, "static",
                images if name == "image_encoder" else None)
        towers.append(OnnxTower(path, input_name, ["CPUExecutionProvider"]))
    return towers


def _agreement(encode_pixels, encode_texts, keras_figures, results):
    """Min cosines to Keras' embeddings and zero-shot agreement with Keras' predictions."""
    images, captions = results.pairs.images[:64], results.pairs.captions[:64]
    keras_images, keras_texts = keras_figures
    texts = [template.format(name) for name in results.class_names for template in PROMPTS]
    classes = encode_texts(texts).reshape(len(results.class_names), len(PROMPTS), -1).mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)  # prompt ensembling
    predictions = np.argmax(encode_pixels(results.seen_images) @ classes.T, axis=1)
    return {
        "image_cosine_min": float(np.min(np.sum(keras_images * encode_pixels(images), axis=1))),
        "text_cosine_min": float(np.min(np.sum(keras_texts * encode_texts(captions), axis=1))),
        "zero_shot_agreement": float(np.mean(predictions == results.predictions)),
    }


PHASES = ("training", "evaluating zero-shot, linear probe and retrieval", "writing the plots",
          "exporting to ONNX and comparing the edge runtime with Keras", "writing summary.json")
SUMMARY_FILE = "summary.json"


def run_demo(output_dir="demo_output", samples=4096, epochs=15, batch_size=128,
             learning_rate=2e-3, eval_samples=1000, seed=0, export=True, verbose=1,
             overwrite=False):
    """Trains, evaluates, plots and exports the demo model; returns a summary dict.

    Prints `[k/N] <phase>…` as each step starts (unless `verbose=0`).

    Args:
        output_dir: where plots, `summary.json`, the preset and the export go.
        samples: synthetic training pairs per epoch (the same pairs each epoch).
        epochs: training epochs.
        batch_size: global batch size (the in-batch negatives).
        learning_rate: peak AdamW learning rate (cosine schedule, warm-up).
        eval_samples: fresh images per evaluation split.
        seed: data and initialisation seed.
        export: export both towers to ONNX and compare the edge runtime to Keras.
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
        overwrite: replace the outputs of a previous run in `output_dir`
            (refused otherwise, before any work).
    """
    import keras

    import keras_clip

    for name, value in (("samples", samples), ("epochs", epochs), ("batch_size", batch_size),
                        ("eval_samples", eval_samples)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")
    if samples < batch_size:
        raise ValueError(f"`samples` ({samples}) must be at least `batch_size` ({batch_size}).")
    if export and importlib.util.find_spec("clip_edge") is None:  # fail before training
        raise ValueError("The demo's export step runs the edge runtime, which is not installed: "
                         "pip install ./export (from the repository), or skip it with "
                         "--no-export (export=False).")
    if os.path.exists(os.path.join(output_dir, SUMMARY_FILE)) and not overwrite:
        raise OSError(f"{output_dir} already holds a demo's {SUMMARY_FILE}; choose another "
                      "--output, or pass --overwrite (overwrite=True) to replace it.")
    if export:
        from keras_clip.export.destination import check_destination

        check_destination(os.path.join(output_dir, "export"), overwrite)
    phase = Phases([p for p in PHASES if export or not p.startswith("exporting")],
                   verbose=bool(verbose))
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    started = time.time()
    phase("training")
    model = keras_clip.CLIP(DEMO_CONFIG)
    history = _train(model, samples, epochs, batch_size, learning_rate, seed, verbose)
    train_seconds = time.time() - started
    model_folder = os.path.join(output_dir, "model")
    if os.path.isdir(model_folder):  # a previous run's (overwrite=True)
        shutil.rmtree(model_folder)
    model.save_to_preset(model_folder)
    phase("evaluating zero-shot, linear probe and retrieval")
    results = _evaluate(model, eval_samples, seed + 1000)
    phase("writing the plots")
    plots = _plots(model, history, results, output_dir)
    if export:
        phase("exporting to ONNX and comparing the edge runtime with Keras")
    edge = _export_and_compare(model, results, output_dir, seed, overwrite) if export else None
    phase("writing summary.json")
    summary = {
        "backend": keras.backend.backend(),
        "parameters": int(model.count_params()),
        "train_seconds": round(train_seconds, 1),
        "final_loss": history["loss"][-1],
        **results.metrics,
        "edge_runtime": edge,
        "plots": plots,
        "total_seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(output_dir, SUMMARY_FILE), "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
    return summary


def format_summary(summary):
    """The demo's closing table, as text."""
    retrieval = summary["retrieval"]
    rows = [
        ("backend", summary["backend"]),
        ("parameters", f"{summary['parameters']:,}"),
        ("training time", f"{summary['train_seconds']:.0f} s"),
        ("final loss", f"{summary['final_loss']:.3f}"),
        ("zero-shot top-1, seen combinations", f"{summary['zero_shot_seen_top1']:.1%}"),
        ("zero-shot top-1, held-out combinations",
         f"{summary['zero_shot_heldout_top1_among_all']:.1%} "
         f"(chance {summary['chance_heldout_among_all']:.1%})"),
        ("linear probe top-1", f"{summary['linear_probe_top1']:.1%}"),
        ("retrieval image->text R@1", f"{retrieval['image_to_text_recall@1']:.1%}"),
        ("retrieval text->image R@1", f"{retrieval['text_to_image_recall@1']:.1%}"),
    ]
    edge = summary.get("edge_runtime")
    for precision, label in (("fp32", "fp32"), ("int8", "int8 dynamic"),
                             ("int8_static", "int8 static")) if edge else ():
        figures = edge.get(precision)
        rows += [
            (f"edge runtime {label} vs Keras, min cosine (image/text)",
             f"{figures['image_cosine_min']:.6f} / {figures['text_cosine_min']:.6f}"),
            (f"edge runtime {label} vs Keras, zero-shot agreement",
             f"{figures['zero_shot_agreement']:.1%}"),
        ] if figures else []
    rows.append(("total time", f"{summary['total_seconds']:.0f} s"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
