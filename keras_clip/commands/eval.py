"""`keras-clip eval zeroshot|linear-probe|retrieval`: evaluate a model on a data set.

Data: a folder of class sub-folders (`--images`), a CSV/TSV table, WebDataset
shards, or the bundled synthetic shapes (the default).

Example:
    $ keras-clip eval zeroshot --model runs/x/final --images photos/ --templates openai_7
    $ keras-clip eval retrieval --model vit_b32 --csv pairs.csv
"""

import os

from keras_clip.commands import HelpFormatter, load_model

PARSER = {
    "help": "Zero-shot, linear-probe or retrieval evaluation.",
    "description": "Evaluates a model (preset name, preset folder or checkpoint) on a folder "
                   "of class sub-folders, a CSV/TSV table, WebDataset shards or the bundled "
                   "synthetic shapes, and prints a table of figures. `keras-clip eval TASK "
                   "--help` lists each task's options.\n\n"
                   "Example:\n"
                   "  keras-clip eval zeroshot --model vit_b32 --images photos/ "
                   "--templates openai_imagenet_7\n"
                   "  keras-clip eval retrieval --model vit_b32 --csv pairs.csv",
}
TASKS = {
    "zeroshot": "zero-shot classification with prompt ensembling",
    "linear-probe": "logistic regression on frozen image features",
    "retrieval": "image<->text recall@1/5/10",
}
EXAMPLES = {
    "zeroshot": "keras-clip eval zeroshot --model vit_b32 --images photos/ "
                "--templates openai_imagenet_7",
    "linear-probe": "keras-clip eval linear-probe --model vit_b32 --images photos/",
    "retrieval": "keras-clip eval retrieval --model vit_b32 --csv pairs.csv",
}


def add_arguments(parser):
    """Adds the three tasks, each with its model and data options, to `parser`."""
    tasks = parser.add_subparsers(dest="task", required=True)
    for task, help_text in TASKS.items():
        sub = tasks.add_parser(task, help=help_text, formatter_class=HelpFormatter,
                               description=f"{help_text[0].upper()}{help_text[1:]}.\n\n"
                                           f"Example:\n  {EXAMPLES[task]}")
        sub.set_defaults(images=None)  # retrieval has no --images
        sub.add_argument("--model", required=True,
                         help="preset name (`keras-clip presets`), preset folder or checkpoint")
        sub.add_argument("--random-weights", action="store_true",
                         help="for a built-in name: random weights (no download; figures at "
                              "chance, for trying the command)")
        source = sub.add_mutually_exclusive_group()
        if task != "retrieval":
            source.add_argument("--images", help="folder with one sub-folder of images per class")
        source.add_argument("--csv", help="CSV/TSV table of image paths and captions")
        source.add_argument("--webdataset", help="WebDataset shards pattern")
        sub.add_argument("--synthetic", type=int, default=1000,
                         help="bundled synthetic data, N samples (used when no data is given)")
        sub.add_argument("--synthetic-split", default="all", choices=["train", "heldout", "all"],
                         help="synthetic colour-shape combinations: seen in training, held out, "
                              "or all")
        sub.add_argument("--csv-img-key", default="filepath", help="--csv column of image paths")
        sub.add_argument("--csv-caption-key", default="title", help="--csv column of captions")
        sub.add_argument("--csv-label-key", default="label", help="--csv column of class labels")
        sub.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
        if task == "zeroshot":
            sub.add_argument("--templates", default="openai_imagenet",
                             help="openai_imagenet (80), openai_imagenet_7, or a text file with "
                                  "one template per line containing {}")


def run(args):
    """Loads the model and data, runs the task and prints its figures; returns 0."""
    _check_paths(args)
    model = load_model(args.model, args.random_weights)
    data = _data(args, model, paired=args.task == "retrieval")
    if len(data) == 0:
        raise ValueError("The evaluation dataset is empty: no images were found.")
    title, rows = {"retrieval": _retrieval, "zeroshot": _zero_shot,
                   "linear-probe": _linear_probe}[args.task](args, model, data)
    _print_table(title, rows)
    return 0


def _check_paths(args):
    for flag in ("images", "csv"):
        path = getattr(args, flag)
        if path and not os.path.exists(path):
            raise ValueError(f"--{flag} {path!r} does not exist.")
    if args.csv and os.path.isdir(args.csv):
        raise ValueError(f"--csv {args.csv!r} is a folder; expected a CSV/TSV file.")


def _data(args, model, paired):
    """The evaluation data `args` name, prepared as `model`'s weights expect."""
    from keras_clip import evaluation

    image_size = model.image_size
    if args.images:
        if not os.path.isdir(args.images):
            raise ValueError(f"--images {args.images!r} is not a folder (expected one sub-folder "
                             "of images per class).")
        return evaluation.image_folder(args.images, model, verbose=True)
    if args.csv:
        return evaluation.csv_pairs(args.csv, model, image_key=args.csv_img_key,
                                    caption_key=args.csv_caption_key,
                                    label_key=None if paired else args.csv_label_key,
                                    verbose=True)
    if args.webdataset:
        return evaluation.webdataset_pairs(args.webdataset, model,
                                           label_key=None if paired else "label", verbose=True)
    split = args.synthetic_split
    if paired:
        return evaluation.synthetic_pairs(args.synthetic, image_size, seed=args.seed, split=split)
    return evaluation.synthetic_classification(args.synthetic, image_size, seed=args.seed,
                                               split=split)


def _retrieval(args, model, data):
    from keras_clip import evaluation

    metrics = evaluation.evaluate_retrieval(model, data, verbose=True)
    return f"retrieval on {len(data)} images", sorted(metrics.items())


def _zero_shot(args, model, data):
    from keras_clip import evaluation

    templates = args.templates
    if os.path.isfile(templates):
        with open(templates, encoding="utf-8") as file:
            templates = [line.strip() for line in file if line.strip()]
    classifier = evaluation.ZeroShotClassifier(model, data.class_names, templates=templates,
                                               verbose=True)
    metrics = classifier.evaluate(data.images, data.labels)
    return (f"zero-shot on {len(data)} images, {len(data.class_names)} classes",
            [(k, v) for k, v in metrics.items() if not isinstance(v, (list, dict))])


def _linear_probe(args, model, data):
    from keras_clip import evaluation

    train, test = _split_half(data)
    result = evaluation.evaluate_linear_probe(model, train, test, verbose=True)
    return (f"linear probe ({len(train)} train / {len(test)} test images)",
            [(key, result[key]) for key in ("accuracy", "C", "val_accuracy")])


def _split_half(data):
    """Random halves of a ClassificationData: train on one, test on the other."""
    import numpy as np

    from keras_clip.evaluation import ClassificationData

    order = np.random.default_rng(0).permutation(len(data))
    half = len(order) // 2
    return tuple(ClassificationData(data.images[idx], data.labels[idx], data.class_names)
                 for idx in (order[:half], order[half:]))


def _print_table(title, rows):
    width = max(len(str(name)) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for name, value in rows:
        value = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{str(name):<{width}}  {value}")
