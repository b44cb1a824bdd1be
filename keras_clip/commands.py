"""The `keras-clip` sub-commands other than `export`: demo, eval, embed, presets.

Each `add_*` function registers a sub-command on an argparse `subparsers`
object and sets `handler`; handlers return the process exit code.

Example:
    $ keras-clip eval zeroshot --model runs/x/final --images photos/ --templates openai_7
"""

import argparse
import json
import os


def _load_model(spec, random_weights=False):
    from keras_clip.presets import from_preset, list_presets

    if spec in list_presets():
        return from_preset(spec, weights=not random_weights)
    if not os.path.exists(spec):
        raise ValueError(f"--model {spec!r} is neither a preset ({', '.join(list_presets())}) "
                         "nor an existing file or folder.")
    return from_preset(spec)


def _print_table(title, rows):
    width = max(len(str(name)) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for name, value in rows:
        value = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{str(name):<{width}}  {value}")


# ---- demo ----------------------------------------------------------------------------------


def add_demo_command(subparsers):
    parser = subparsers.add_parser(
        "demo", help="Train a small CLIP on bundled synthetic data, evaluate, plot, export.",
        description="Trains a small CLIP from scratch on the bundled synthetic shapes with "
                    "model.fit, reports zero-shot (seen and held-out combinations), linear-probe "
                    "and retrieval figures, writes PNG plots, exports both towers to ONNX and "
                    "checks the Keras-free edge runtime against Keras. Offline, CPU, minutes.")
    parser.add_argument("--output", "-o", default="demo_output", help="output folder")
    parser.add_argument("--samples", type=int, default=4096, help="training pairs per epoch")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--eval-samples", type=int, default=1000, help="fresh images per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    parser.set_defaults(handler=run_demo_command)


def run_demo_command(args):
    from keras_clip.demo import format_summary, run_demo

    summary = run_demo(args.output, samples=args.samples, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       eval_samples=args.eval_samples, seed=args.seed,
                       export=not args.no_export)
    print("\n" + format_summary(summary))
    print(f"\nplots, summary.json, model/ and export/ are in {args.output}/")
    return 0


# ---- train ---------------------------------------------------------------------------------


def add_train_command(subparsers):
    parser = subparsers.add_parser(
        "train", help="Train CLIP with model.fit (synthetic, WebDataset or CSV data).",
        add_help=False,
        description="All options: keras-clip train --help.")
    parser.add_argument("train_args", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=run_train_command)


def run_train_command(args):
    from keras_clip.training.script import main

    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    main(train_args)
    return 0


# ---- eval ----------------------------------------------------------------------------------


def _eval_data(args, image_size, paired):
    from keras_clip import evaluation

    if args.images:
        if not os.path.isdir(args.images):
            raise ValueError(f"--images {args.images!r} is not a folder (expected one sub-folder "
                             "of images per class).")
        return evaluation.image_folder(args.images, image_size, verbose=True)
    if args.csv:
        return evaluation.csv_pairs(args.csv, image_size, image_key=args.csv_img_key,
                                    caption_key=args.csv_caption_key,
                                    label_key=None if paired else args.csv_label_key,
                                    verbose=True)
    if args.webdataset:
        return evaluation.webdataset_pairs(args.webdataset, image_size,
                                           label_key=None if paired else "label", verbose=True)
    split = args.synthetic_split
    if paired:
        return evaluation.synthetic_pairs(args.synthetic, image_size, seed=args.seed, split=split)
    return evaluation.synthetic_classification(args.synthetic, image_size, seed=args.seed,
                                               split=split)


def add_eval_command(subparsers):
    parser = subparsers.add_parser("eval", help="Zero-shot, linear-probe or retrieval evaluation.")
    tasks = parser.add_subparsers(dest="task", required=True)
    for task, help_text in (("zeroshot", "zero-shot classification with prompt ensembling"),
                            ("linear-probe", "logistic regression on frozen image features"),
                            ("retrieval", "image<->text recall@1/5/10")):
        sub = tasks.add_parser(task, help=help_text, description=help_text)
        sub.add_argument("--model", required=True, help="preset name, preset folder or checkpoint")
        sub.add_argument("--random-weights", action="store_true",
                         help="for a built-in name: random weights (no download)")
        source = sub.add_mutually_exclusive_group()
        if task != "retrieval":
            source.add_argument("--images", help="folder with one sub-folder of images per class")
        source.add_argument("--csv", help="CSV/TSV table of image paths and captions")
        source.add_argument("--webdataset", help="WebDataset shards pattern")
        sub.add_argument("--synthetic", type=int, default=1000,
                         help="bundled synthetic data, N samples (default when no data given)")
        sub.add_argument("--synthetic-split", default="all", choices=["train", "heldout", "all"])
        sub.add_argument("--csv-img-key", default="filepath")
        sub.add_argument("--csv-caption-key", default="title")
        sub.add_argument("--csv-label-key", default="label")
        sub.add_argument("--seed", type=int, default=1)
        if task == "zeroshot":
            sub.add_argument("--templates", default="openai_imagenet",
                             help="openai_imagenet (80), openai_imagenet_7, or a text file with "
                                  "one template per line containing {}")
        sub.set_defaults(handler=run_eval_command, images=getattr(sub, "images", None))
    parser.set_defaults(handler=None)


def run_eval_command(args):
    from keras_clip import evaluation

    args.images = getattr(args, "images", None)
    for flag in ("images", "csv"):
        path = getattr(args, flag, None)
        if path and not os.path.exists(path):
            raise ValueError(f"--{flag} {path!r} does not exist.")
    if args.csv and os.path.isdir(args.csv):
        raise ValueError(f"--csv {args.csv!r} is a folder; expected a CSV/TSV file.")
    model = _load_model(args.model, args.random_weights)
    if args.task == "retrieval":
        data = _eval_data(args, model.image_size, paired=True)
        _require_data(data)
        metrics = evaluation.evaluate_retrieval(model, data, verbose=True)
        _print_table(f"retrieval on {len(data)} images", sorted(metrics.items()))
    elif args.task == "zeroshot":
        data = _eval_data(args, model.image_size, paired=False)
        _require_data(data)
        templates = args.templates
        if os.path.isfile(templates):
            with open(templates, encoding="utf-8") as file:
                templates = [line.strip() for line in file if line.strip()]
        classifier = evaluation.ZeroShotClassifier(model, data.class_names, templates=templates,
                                                   verbose=True)
        metrics = classifier.evaluate(data.images, data.labels)
        _print_table(f"zero-shot on {len(data)} images, {len(data.class_names)} classes",
                     [(k, v) for k, v in metrics.items() if not isinstance(v, (list, dict))])
    else:
        data = _eval_data(args, model.image_size, paired=False)
        _require_data(data)
        train, test = _split_half(data)
        result = evaluation.evaluate_linear_probe(model, train, test, verbose=True)
        metrics = {"accuracy": result["accuracy"], "C": result["C"],
                   "val_accuracy": result["val_accuracy"]}
        _print_table(f"linear probe ({len(train)} train / {len(test)} test images)",
                     list(metrics.items()))
    return 0


def _require_data(data):
    if len(data) == 0:
        raise ValueError("The evaluation dataset is empty: no images were found.")


def _split_half(data):
    """Alternating halves of a ClassificationData: train on one, test on the other."""
    import numpy as np

    from keras_clip.evaluation import ClassificationData

    order = np.random.default_rng(0).permutation(len(data))
    half = len(order) // 2
    pick = lambda idx: ClassificationData(data.images[idx], data.labels[idx],  # noqa: E731
                                          data.class_names)
    return pick(order[:half]), pick(order[half:])


# ---- embed ---------------------------------------------------------------------------------


def add_embed_command(subparsers):
    parser = subparsers.add_parser(
        "embed", help="Embed a folder of images or a text file of captions to .npy/.parquet.")
    parser.add_argument("--model", required=True, help="preset name, preset folder or checkpoint")
    parser.add_argument("--random-weights", action="store_true")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images (searched recursively)")
    source.add_argument("--texts", help="text file, one caption per line")
    parser.add_argument("--output", "-o", required=True, help="output .npy or .parquet file")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.set_defaults(handler=run_embed_command)


def _image_paths(folder):
    from keras_clip.evaluation.datasets import IMAGE_EXTENSIONS

    if not os.path.isdir(folder):
        raise ValueError(f"--images {folder!r} is not a folder.")
    paths = sorted(
        os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
        if name.lower().endswith(tuple(IMAGE_EXTENSIONS))
    )
    if not paths:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder!r}.")
    return paths


def run_embed_command(args):
    import numpy as np
    from PIL import Image

    from keras_clip import ImagePreprocessor, evaluation

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive int; received {args.batch_size}.")
    if not args.output.endswith((".npy", ".parquet")):
        raise ValueError(f"--output must end in .npy or .parquet, received {args.output!r}.")
    if args.texts and not os.path.isfile(args.texts):
        raise ValueError(f"--texts {args.texts!r} is not a file.")
    names = _image_paths(args.images) if args.images else None  # checked before the model loads
    model = _load_model(args.model, args.random_weights)
    if args.images:
        preprocess = ImagePreprocessor(model.image_size)
        chunks = []
        for start in evaluation.progress(range(0, len(names), args.batch_size),
                                         total=-(-len(names) // args.batch_size),
                                         desc="images", verbose=True):
            batch = [np.asarray(Image.open(p).convert("RGB"))
                     for p in names[start:start + args.batch_size]]
            chunks.append(evaluation.encode_images(model, preprocess(batch),
                                                   normalize=args.normalize))
        embeddings = np.concatenate(chunks)
    else:
        with open(args.texts, encoding="utf-8") as file:
            names = [line.rstrip("\n") for line in file if line.strip()]
        if not names:
            raise ValueError(f"{args.texts!r} holds no captions.")
        embeddings = evaluation.encode_texts(model, names, normalize=args.normalize,
                                             batch_size=args.batch_size, verbose=True)
    _write_embeddings(args.output, names, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}")
    return 0


def _write_embeddings(path, names, embeddings):
    import numpy as np

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".npy"):
        np.save(path, embeddings.astype("float32"))
        with open(path[: -len(".npy")] + ".txt", "w", encoding="utf-8") as file:
            file.write("\n".join(names) + "\n")
        return
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ValueError("Writing .parquet needs pyarrow (pip install pyarrow); "
                         "or write .npy instead.") from error
    table = pa.table({"name": names,
                      "embedding": [row.astype("float32").tolist() for row in embeddings]})
    pq.write_table(table, path)


# ---- presets -------------------------------------------------------------------------------


def add_presets_command(subparsers):
    parser = subparsers.add_parser("presets", help="List the built-in architectures.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_presets_command)


def run_presets_command(args):
    from keras_clip.presets import list_presets, preset_config
    from keras_clip.presets.download import weight_sources

    sources = weight_sources()
    rows = []
    for name in list_presets():
        config = preset_config(name)
        source = sources.get(name, {})
        rows.append({
            "preset": name, "image tower": config.vision.type,
            "image size": config.vision.image_size, "embed": config.embed_dim,
            "weights": source.get("repo_id", "-"),
            "pinned": "yes" if source.get("sha256") else "no",
            "ImageNet zero-shot": source.get("imagenet_zero_shot_top1", "-"),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths)))
    return 0
