"""`keras-clip finetune`: the fine-tuning benchmark (full, LiT, LoRA, FLYP, WiSE-FT).

Example:
    $ keras-clip finetune --method full --method lora --wise-ft --output finetune_output
    $ keras-clip finetune --base demo_output/model --epochs 3
"""

import json
import os

PARSER = {
    "help": "Fine-tune a small CLIP on a shifted synthetic domain with each recipe.",
    "description": "Pretrains the demo's CLIP on the synthetic shapes (or loads --base), "
                   "fine-tunes it on the same classes drawn in a shifted domain (outlines on "
                   "textured backgrounds) with full fine-tuning, LiT, LoRA or FLYP, and reports "
                   "task accuracy, zero-shot accuracy kept on the original domain and the "
                   "held-out combinations, trained parameters and wall time; --wise-ft adds the "
                   "WiSE-FT sweep of full fine-tuning. Writes finetune.json, .md and .png.",
}

METHODS = ("full", "lit", "lora", "flyp")  # = finetune.experiment.METHODS (tested); --help
# imports no backend, and keras_clip.finetune's package imports Keras


def add_arguments(parser):
    """Adds the command's options to the argparse parser `parser`."""
    parser.add_argument("--method", action="append", choices=METHODS,
                        help="a recipe to run (repeat for several; default all four)")
    parser.add_argument("--wise-ft", action="store_true",
                        help="sweep WiSE-FT's alpha for full fine-tuning (adds 'full')")
    parser.add_argument("--base", help="preset folder of the pretrained model (default: "
                                       "pretrain the demo's model first)")
    parser.add_argument("--output", "-o", default="finetune_output", help="output folder")
    parser.add_argument("--pretrain-samples", type=int, default=4096)
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--train-samples", type=int, default=2048,
                        help="shifted-domain training images")
    parser.add_argument("--eval-samples", type=int, default=1000, help="images per test set")
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)


def format_table(results):
    """The results as a Markdown table (accuracies in %)."""
    lines = [("| method | task (shifted) | zero-shot original | zero-shot held-out | "
              "trained parameters | wall time |"), "|---|---|---|---|---|---|"]
    total = results["parameters"]
    for row in results["rows"]:
        lines.append(f"| {row['method']} | {row['task']:.1%} | {row['zero_shot_original']:.1%} "
                     f"| {row['zero_shot_heldout']:.1%} | {row['trained_parameters']:,} "
                     f"({row['trained_parameters'] / total:.2%}) | {row['seconds']:.0f} s |")
    sweep = results.get("wise_ft")
    if sweep:
        lines += ["", "WiSE-FT of full fine-tuning (alpha 0: zero-shot, 1: fine-tuned):", "",
                  "| alpha | task (shifted) | zero-shot original |", "|---|---|---|"]
        lines += [f"| {row['alpha']:.1f} | {row['in_distribution']:.1%} | {row['shifted']:.1%} |"
                  for row in sweep["table"]]
        lines += ["", (f"best alpha {sweep['best_alpha']:.1f} (held-out zero-shot there: "
                       f"{sweep['best_heldout']:.1%})")]
    return "\n".join(lines)


def plot_wise_ft(sweep, path):
    """Writes the WiSE-FT curve (accuracy on both domains against alpha) to the PNG `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = [row["alpha"] for row in sweep["table"]]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(alphas, [row["in_distribution"] for row in sweep["table"]], marker="o",
              label="task: shifted domain (classifier)")
    axis.plot(alphas, [row["shifted"] for row in sweep["table"]], marker="s",
              label="zero-shot: original domain")
    axis.axvline(sweep["best_alpha"], color="grey", linestyle=":", label="best alpha")
    axis.set(xlabel="alpha (0: zero-shot weights, 1: fine-tuned)", ylabel="top-1 accuracy",
             title="WiSE-FT of full fine-tuning", ylim=(0, 1.02))
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(args):
    """Runs the benchmark, writes its files and prints the table; returns 0."""
    from keras_clip.finetune.experiment import (
        METHODS,
        check_positive,
        pretrain,
        run_experiment,
    )
    from keras_clip.models.preset_folder import is_preset_folder

    check_positive(pretrain_samples=args.pretrain_samples, epochs=args.epochs,
                    pretrain_epochs=args.pretrain_epochs)
    methods = tuple(args.method or METHODS)
    if args.wise_ft and "full" not in methods:
        methods = ("full",) + methods
    if args.base and not is_preset_folder(args.base):
        raise ValueError(f"--base {args.base} is not a preset folder (config.json and "
                         "model.weights.h5); expected e.g. the demo's output/model.")
    os.makedirs(args.output, exist_ok=True)
    base = args.base
    if base is None:
        base = os.path.join(args.output, "base_model")
        pretrain(args.pretrain_samples, args.pretrain_epochs, args.seed).save_to_preset(base)
    results = run_experiment(base, methods, args.wise_ft, args.train_samples, args.eval_samples,
                             args.epochs, args.batch_size, lora_rank=args.lora_rank,
                             seed=args.seed)
    with open(os.path.join(args.output, "finetune.json"), "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    table = format_table(results)
    with open(os.path.join(args.output, "finetune.md"), "w", encoding="utf-8") as file:
        file.write(table + "\n")
    if results["wise_ft"]:
        plot_wise_ft(results["wise_ft"], os.path.join(args.output, "finetune.png"))
    print(table)
    return 0
