"""`keras-clip demo`: train a small CLIP on synthetic shapes, evaluate, plot, export.

Example:
    $ keras-clip demo --output demo_output --epochs 5
"""

PARSER = {
    "help": "Train a small CLIP on bundled synthetic data, evaluate, plot, export.",
    "description": "Trains a small CLIP from scratch on the bundled synthetic shapes with "
                   "model.fit, reports zero-shot (seen and held-out combinations), linear-probe "
                   "and retrieval figures, writes PNG plots, exports both towers to ONNX and "
                   "checks the Keras-free edge runtime against Keras. Offline, CPU, minutes; "
                   "each step is announced as [k/N]. Writes into --output: "
                   "training_curves.png, similarity_matrix.png, zero_shot_confusion.png, "
                   "summary.json, model/ (a preset folder), export/ (the ONNX folder: fp32 and "
                   "dynamic int8) and int8_static/ (static int8 calibrated on training "
                   "images).\n\n"
                   "Example:\n  keras-clip demo --output demo_output --epochs 5",
}


def add_arguments(parser):
    """Adds the demo's options to the argparse parser `parser`."""
    parser.add_argument("--output", "-o", default="demo_output", help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous demo's outputs in --output")
    parser.add_argument("--samples", type=int, default=4096,
                        help="synthetic training pairs per epoch (the same pairs each epoch)")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="pairs per step; the other pairs of a batch are its negatives")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="peak AdamW learning rate (warm-up, then cosine decay)")
    parser.add_argument("--eval-samples", type=int, default=1000,
                        help="fresh images per evaluation split")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data and of the weight initialisation")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the ONNX export and the edge-runtime comparison")


def run(args):
    """Runs the demo and prints its closing table; returns 0."""
    from keras_clip.demo import format_summary, run_demo

    summary = run_demo(args.output, samples=args.samples, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       eval_samples=args.eval_samples, seed=args.seed,
                       export=not args.no_export, overwrite=args.overwrite)
    print("\n" + format_summary(summary))
    folders = "model/" if args.no_export else "model/, export/ and int8_static/"
    print(f"\nplots, summary.json and {folders} are in {args.output}/")
    return 0
