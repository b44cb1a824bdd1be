"""Train CLIP with `model.fit`: synthetic shapes, WebDataset shards or a CSV table.

Any Keras backend (set KERAS_BACKEND). Examples:

    # A tiny CLIP on the bundled synthetic shapes, then zero-shot accuracy:
    keras-clip train --synthetic 20000 --config examples/tiny_clip.json \\
        --batch-size 128 --epochs 8 --lr 2e-3 --warmup-steps 50 --zero-shot 1000 \\
        --output-dir runs/shapes

    # ViT-B/32 from scratch on img2dataset shards, two GPUs, bf16, remat:
    KERAS_BACKEND=tensorflow keras-clip train --preset vit_b32 \\
        --webdataset "shards/{00000..00999}.tar" --batch-size 512 --epochs 32 \\
        --steps-per-epoch 5000 --strategy mirrored --precision mixed_bfloat16 --remat

    # JAX on all local devices:
    KERAS_BACKEND=jax keras-clip train ... --strategy data_parallel

Writes to --output-dir: `backup/` (BackupAndRestore: rerun the same command
after a crash and training resumes from the last completed epoch, or step with
--backup-every), `checkpoints/epoch_NNN.weights.h5`, `logs/` (TensorBoard) and
`final/` (a preset folder: `keras_clip.from_preset("runs/x/final")`).

A step whose loss or a gradient is NaN/inf is skipped (counted in the
`skipped_steps` metric). After --max-skipped-steps consecutive skipped steps,
or if a weight is non-finite at the end of an epoch, training stops with one
error line and exit code 3, and no checkpoint, `final/` or `summary.json` is
written for it. Bad flags exit with code 2.
"""

import argparse
import json
import math
import os
import sys
import time


def parse_args(argv=None):
    """The options of `keras-clip train` (`argv`: the words after `train`); see `run`."""
    parser = argparse.ArgumentParser(prog="keras-clip train", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(parser)
    return parser.parse_args(argv)


def add_arguments(p):
    """Adds every `keras-clip train` option to the argparse parser `p`."""
    data = p.add_argument_group("data (one of)")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="N",
                        help="bundled synthetic shapes, N samples per epoch")
    source.add_argument("--webdataset", metavar="PATTERN",
                        help='WebDataset shards, e.g. "data/{00000..00099}.tar"')
    source.add_argument("--csv", metavar="PATH", help="CSV/TSV table of image paths and captions")
    data.add_argument("--csv-img-key", default="filepath")
    data.add_argument("--csv-caption-key", default="title")
    data.add_argument("--csv-separator", default=None)
    data.add_argument("--cache", action="store_true",
                      help="keep the decoded/rendered batches in memory after epoch 1 "
                           "(same crops every epoch; for small data sets)")
    data.add_argument("--steps-per-epoch", type=int, default=None,
                      help="needed for shard/CSV data that repeats; default: one pass")
    data.add_argument("--zero-shot", type=int, default=0, metavar="N",
                      help="synthetic only: after training, zero-shot accuracy on N fresh "
                           "images of the seen classes and N of the held-out combinations")
    model = p.add_argument_group("model (one of)")
    arch = model.add_mutually_exclusive_group(required=True)
    arch.add_argument("--preset", help="preset name or folder, e.g. vit_b32 (random init "
                                       "unless --pretrained)")
    arch.add_argument("--config", help="a CLIP config JSON file")
    model.add_argument("--pretrained", action="store_true", help="start from preset weights")
    model.add_argument("--remat", action="store_true",
                       help="gradient checkpointing of every residual block")
    model.add_argument("--loss", default="softmax", choices=["softmax", "sigmoid"],
                       help="softmax: CLIP's contrastive loss; sigmoid: SigLIP's pairwise "
                            "loss (learnable bias)")
    train = p.add_argument_group("training")
    train.add_argument("--batch-size", type=int, default=256, help="global batch size")
    train.add_argument("--micro-batch-size", type=int, default=None, metavar="M",
                       help="gradient caching: the exact global-batch gradient, computed "
                            "M pairs per replica at a time (memory of M, not the batch)")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    train.add_argument("--warmup-steps", type=int, default=0)
    train.add_argument("--weight-decay", type=float, default=0.2)
    train.add_argument("--clipnorm", type=float, default=None, help="global gradient norm clip")
    train.add_argument("--max-skipped-steps", type=int, default=10, metavar="N",
                       help="stop (exit 3) after N consecutive steps skipped for a "
                            "non-finite loss or gradient")
    train.add_argument("--strategy", default="none",
                       choices=["none", "mirrored", "multiworker", "tpu", "data_parallel"])
    train.add_argument("--tpu", default="", help="TPU address for --strategy tpu")
    train.add_argument("--jax-distributed", action="store_true",
                       help="call jax.distributed.initialize() first (multi-process "
                            "data_parallel; reads JAX_COORDINATOR_ADDRESS, "
                            "JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    train.add_argument("--precision", default="float32",
                       choices=["float32", "mixed_bfloat16", "mixed_float16"])
    train.add_argument("--seed", type=int, default=0)
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", default="runs/clip")
    out.add_argument("--backup-every", default="epoch",
                     help="'epoch' or a number of steps between BackupAndRestore saves")
    out.add_argument("--no-tensorboard", action="store_true")
    out.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                     help="1: progress bar, 2: one line per epoch")


def check_args(args):
    """Raises a one-line ValueError naming the first flag out of range."""
    from keras_clip.training.optimizers import check_number

    for flag, low in (("batch_size", 1), ("micro_batch_size", 1), ("epochs", 1), ("warmup_steps", 0),
                      ("max_skipped_steps", 1), ("zero_shot", 0), ("steps_per_epoch", 1)):
        value = getattr(args, flag)
        if value is not None and value < low:
            raise ValueError(f"--{flag.replace('_', '-')} must be an integer >= {low}, "
                             f"received {value}.")
    check_number("--lr", args.lr, 0, low_open=True)
    check_number("--weight-decay", args.weight_decay, 0)
    if args.clipnorm is not None:
        check_number("--clipnorm", args.clipnorm, 0, low_open=True)
    if args.backup_every != "epoch" and not (args.backup_every.isdigit()
                                             and int(args.backup_every) > 0):
        raise ValueError(f"--backup-every must be 'epoch' or a positive number of steps, "
                         f"received {args.backup_every!r}.")
    if args.zero_shot and not args.synthetic:
        raise ValueError("--zero-shot needs --synthetic (the classes are the synthetic "
                         "colour-shapes).")
    if args.synthetic is not None and args.synthetic < args.batch_size:
        raise ValueError(f"--synthetic N must be at least --batch-size {args.batch_size}, "
                         f"received {args.synthetic}.")


def _check_micro_batch(args, strategy):
    """--micro-batch-size against the per-replica batch, before anything is built."""
    if args.micro_batch_size is None:
        return
    from keras_clip.models.grad_cache import check_micro_batch_size

    replicas = 1
    if strategy is not None:
        replicas = strategy.num_replicas_in_sync
    elif args.strategy == "data_parallel":
        import jax

        replicas = jax.device_count()
    if args.batch_size % replicas:
        raise ValueError(f"--batch-size {args.batch_size} must divide among {replicas} "
                         "replicas.")
    try:
        check_micro_batch_size(args.micro_batch_size, args.batch_size // replicas)
    except ValueError as error:
        raise ValueError(f"--{error}".replace("--micro_batch_size", "--micro-batch-size")) from None


def build_model(args):
    import keras_clip

    if args.config:
        config = keras_clip.CLIPConfig.from_json(args.config)
        return keras_clip.CLIP(config, remat=args.remat, loss=args.loss)
    return keras_clip.from_preset(args.preset, weights=args.pretrained, remat=args.remat,
                                  loss=args.loss)


def build_dataset(args, config, num_workers=1, worker_index=0):
    """`(dataset, steps per epoch)` of `args`' data, prepared as the `CLIPConfig` `config`'s
    weights expect (image size, mean, std) and tokenized to its context length."""
    from keras_clip import CLIPTokenizer, data

    image_size, context_length = config.vision.image_size, config.text.context_length

    tokenizer = CLIPTokenizer(context_length=context_length)
    if args.synthetic:
        shapes = data.SyntheticShapes(image_size=image_size, seed=args.seed, split="train")
        # The same N samples every epoch (so a restored run sees the same data).
        ds = shapes.as_tf_dataset(args.batch_size, num_samples=args.synthetic, training=True,
                                  seed=args.seed, tokenizer=tokenizer)
        return _maybe_cache(ds, args), math.ceil(args.synthetic / args.batch_size)
    per_worker = args.batch_size // num_workers
    options = data.PipelineOptions.for_model(
        config, per_worker, tokenizer=tokenizer, seed=args.seed, num_shards=num_workers,
        shard_index=worker_index, drop_remainder=True, repeat=args.steps_per_epoch is not None)
    if args.webdataset:
        ds = data.webdataset_dataset(args.webdataset, options=options)
    else:
        ds = data.csv_dataset(args.csv, options=options, image_key=args.csv_img_key,
                              caption_key=args.csv_caption_key, sep=args.csv_separator)
    return _maybe_cache(ds, args), args.steps_per_epoch


def _maybe_cache(ds, args):
    if not args.cache:
        return ds
    cached = ds.cache()
    cached.quality_stats = getattr(ds, "quality_stats", None)
    return cached


def build_callbacks(args, dataset):
    import keras

    from keras_clip import data
    from keras_clip.training.divergence import SkippedStepsGuard

    save_freq = "epoch" if args.backup_every == "epoch" else int(args.backup_every)
    callbacks = [
        SkippedStepsGuard(args.max_skipped_steps),  # first: raises before anything is saved
        keras.callbacks.BackupAndRestore(os.path.join(args.output_dir, "backup"),
                                         save_freq=save_freq),
        keras.callbacks.ModelCheckpoint(
            os.path.join(args.output_dir, "checkpoints", "epoch_{epoch:03d}.weights.h5"),
            save_weights_only=True),
    ]
    if not args.no_tensorboard:
        try:
            import tensorboard  # noqa: F401  (keras' TensorBoard callback needs it)

            callbacks.append(keras.callbacks.TensorBoard(os.path.join(args.output_dir, "logs")))
        except ImportError:
            print("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    if getattr(dataset, "quality_stats", None) is not None:
        callbacks.append(data.DataQualityReport(dataset))
    return callbacks


def zero_shot(model, image_size, n, seed, batch_size=256):
    """Zero-shot top-1 with "a photo of a {class}." on fresh synthetic images.

    Returns accuracies: seen classes (among the seen classes), held-out
    combinations (among all classes) and held-out (among the held-out only).
    """
    import numpy as np

    from keras_clip import CLIPTokenizer, data
    from keras_clip.evaluation import ZeroShotClassifier

    tokenizer = CLIPTokenizer(context_length=model.context_length)

    def accuracy(split, names):
        shapes = data.SyntheticShapes(image_size=image_size, seed=seed, split=split)
        ds = shapes.as_tf_dataset(batch_size, num_samples=n, training=False, include_labels=True,
                                  tokenizer=tokenizer)
        classifier = ZeroShotClassifier(model, names, templates="a photo of a {}.",
                                        tokenizer=tokenizer, batch_size=batch_size)
        index = {name: i for i, name in enumerate(names)}
        remap = np.array([index[name] for name in shapes.classes])  # split label -> names
        hits = total = 0
        for batch in ds.as_numpy_iterator():
            predicted = classifier.predict(batch["images"])
            hits += int(np.sum(predicted == remap[batch["labels"]]))
            total += len(predicted)
        return hits / total

    return {
        "seen_classes": accuracy("train", data.class_names("train")),
        "heldout_among_all": accuracy("heldout", data.class_names("all")),
        "heldout_among_heldout": accuracy("heldout", data.class_names("heldout")),
    }


def main(argv=None):
    """Runs `keras-clip train`; exits with code 3 if training diverges (see above)."""
    return run(parse_args(argv))


def run(args):
    """Trains as `args` (from a parser `add_arguments` filled) say; exit code 3 on divergence."""
    from keras_clip.training.divergence import TrainingDiverged

    check_args(args)
    try:
        return train(args)
    except TrainingDiverged as error:
        print(f"keras-clip train: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None


def train(args):
    """Trains as `args` (from `parse_args`) say; returns the summary."""
    import keras

    from keras_clip.training import build_optimizer, make_strategy

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    if args.jax_distributed:
        from keras_clip.training.distribution import (
            check_same_across_processes,
            init_jax_distributed,
        )

        init_jax_distributed()
        for flag in ("batch_size", "micro_batch_size", "seed"):
            check_same_across_processes(f"--{flag.replace('_', '-')}",
                                        getattr(args, flag) or 0)
    strategy = make_strategy(args.strategy, tpu=args.tpu)
    workers, worker_index = 1, 0
    if args.strategy == "multiworker":
        workers = strategy.cluster_resolver.cluster_spec().num_tasks("worker")
        worker_index = strategy.cluster_resolver.task_id
    if workers > 1 and args.batch_size % workers:
        raise ValueError(f"--batch-size {args.batch_size} must divide among {workers} workers.")
    _check_micro_batch(args, strategy)

    import contextlib

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(args)
        dataset, steps = build_dataset(args, model.config, workers, worker_index)
        if steps is None:
            raise ValueError("Pass --steps-per-epoch for shard/CSV data (one pass is unknown).")
        if args.jax_distributed:  # Keras splits each batch among the processes: fixed size
            stats = getattr(dataset, "quality_stats", None)
            dataset = dataset.rebatch(args.batch_size, drop_remainder=True)
            dataset.quality_stats = stats
        total_steps = steps * args.epochs
        optimizer = build_optimizer(
            model, args.lr, total_steps=total_steps, warmup_steps=min(args.warmup_steps,
                                                                      total_steps - 1),
            weight_decay=args.weight_decay, global_clipnorm=args.clipnorm)
        if args.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, micro_batch_size=args.micro_batch_size)
    print(f"{model.name}: {model.count_params():,} parameters, {steps} steps x "
          f"{args.epochs} epochs, global batch {args.batch_size}, backend "
          f"{keras.backend.backend()}, {args.precision}, strategy {args.strategy}", flush=True)

    start = time.time()
    history = model.fit(dataset, epochs=args.epochs, shuffle=False,  # the pipeline shuffles
                        steps_per_epoch=None if args.synthetic else steps,
                        callbacks=build_callbacks(args, dataset), verbose=args.verbose)
    elapsed = time.time() - start  # SkippedStepsGuard checked the weights at each epoch's end
    summary = {"train_seconds": round(elapsed, 1),
               "history": {k: [float(x) for x in v] for k, v in history.history.items()}}
    if worker_index == 0:
        model.save_to_preset(os.path.join(args.output_dir, "final"))
    if args.zero_shot:
        summary["zero_shot"] = zero_shot(model, model.image_size, args.zero_shot,
                                         seed=args.seed + 1000)
        print("zero-shot top-1:", json.dumps(summary["zero_shot"]), flush=True)
    if worker_index == 0:
        with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
    return summary
