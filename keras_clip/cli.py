"""`keras-clip` command line.

Sub-commands: `demo`, `train`, `eval zeroshot|linear-probe|retrieval`,
`export`, `embed`, `presets`, `convert`; `--help` on each. Each is a module with
`PARSER`, `add_arguments(parser)` and `run(args)` (see `keras_clip.commands`).
Bad input ends the process with exit code 2 and a one-line reason. `--help`,
`presets` and argument errors import no Keras backend; commands that run a
model hide TensorFlow's start-up log lines unless `--verbose`.

Example:
    $ keras-clip demo
    $ keras-clip export vit_b32 --output vit_b32_export --int8
"""

import argparse
import sys

DESCRIPTION = """CLIP for Keras 3 (TensorFlow, JAX or torch backend: set KERAS_BACKEND).

Examples:
  keras-clip demo                                   # train, evaluate and export a small CLIP
  keras-clip presets                                # the built-in models
  keras-clip export vit_b32 --output vit_b32_export --int8
  keras-clip <command> --help                       # each command's options"""


def commands():
    """`{sub-command: its module}`, in `--help` order."""
    from keras_clip.commands import convert, demo, embed, finetune, presets, train
    from keras_clip.commands import eval as evaluate
    from keras_clip.export import command as export

    return {"demo": demo, "train": train, "eval": evaluate, "export": export, "embed": embed,
            "presets": presets, "convert": convert, "finetune": finetune}


def add_verbose(parser, default=False):
    """Adds `--verbose` (show the backend's start-up logs) to `parser`."""
    parser.add_argument("--verbose", dest="backend_logs", action="store_true", default=default,
                        help="show TensorFlow's C++/absl start-up logs (hidden by default)")


def build_parser():
    """The argparse parser with every sub-command registered."""
    from keras_clip.commands import HelpFormatter

    parser = argparse.ArgumentParser(prog="keras-clip", description=DESCRIPTION,
                                     formatter_class=HelpFormatter)
    add_verbose(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in commands().items():
        options = {"formatter_class": HelpFormatter, **module.PARSER}
        command = subparsers.add_parser(name, **options)
        module.add_arguments(command)
        if not any("--verbose" in action.option_strings for action in command._actions):
            add_verbose(command, default=argparse.SUPPRESS)  # train's --verbose is Keras'
        command.set_defaults(run=module.run, runs_model=getattr(module, "RUNS_MODEL", True))
    return parser


def main(argv=None):
    """Entry point of the `keras-clip` script; returns the exit code.

    Args:
        argv: the words after `keras-clip`; None reads the process's own
            command line and, for a command that runs a model, hides the
            backend's start-up logs for the rest of the process.
    """
    args = build_parser().parse_args(argv)
    if argv is None and args.runs_model and not args.backend_logs:
        from keras_clip.commands import backend_logs

        backend_logs.silence()
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"keras-clip {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
