"""`keras-clip` command line.

Sub-commands: `demo`, `train`, `eval zeroshot|linear-probe|retrieval`,
`export`, `embed`, `presets`, `convert`; `--help` on each. Each is a module with
`PARSER`, `add_arguments(parser)` and `run(args)` (see `keras_clip.commands`).
Bad input ends the process with exit code 2 and a one-line reason.

Example:
    $ keras-clip demo
    $ keras-clip export vit_b32 --output vit_b32_export --int8
"""

import argparse
import sys


def commands():
    """`{sub-command: its module}`, in `--help` order."""
    from keras_clip.commands import convert, demo, embed, presets, train
    from keras_clip.commands import eval as evaluate
    from keras_clip.export import command as export

    return {"demo": demo, "train": train, "eval": evaluate, "export": export, "embed": embed,
            "presets": presets, "convert": convert}


def build_parser():
    """The argparse parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="keras-clip", description="CLIP for Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module in commands().items():
        command = subparsers.add_parser(name, **module.PARSER)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv=None):
    """Entry point of the `keras-clip` script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"keras-clip {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
