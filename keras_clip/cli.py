"""`keras-clip` command line.

Sub-commands: `demo`, `train`, `eval zeroshot|linear-probe|retrieval`,
`export`, `embed`, `presets`; `--help` on each. Bad input ends the process
with exit code 2 and a one-line reason.

Example:
    $ keras-clip demo
    $ keras-clip export vit_b32 --output vit_b32_export --int8
"""

import argparse
import sys


def build_parser():
    """The argparse parser with every sub-command registered."""
    from keras_clip import commands
    from keras_clip.export.command import add_export_command

    parser = argparse.ArgumentParser(prog="keras-clip", description="CLIP for Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    commands.add_demo_command(subparsers)
    commands.add_train_command(subparsers)
    commands.add_eval_command(subparsers)
    add_export_command(subparsers)
    commands.add_embed_command(subparsers)
    commands.add_presets_command(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `keras-clip` script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # the training script owns all of its options, --help included
        argv = ["train", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"keras-clip {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
