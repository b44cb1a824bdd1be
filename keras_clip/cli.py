"""`keras-clip` command line: sub-commands (for now `export`).

Example:
    $ keras-clip export vit_b32 --output vit_b32_export --int8
"""

import argparse
import sys


def build_parser():
    """The argparse parser with every sub-command registered."""
    from keras_clip.export.command import add_export_command

    parser = argparse.ArgumentParser(prog="keras-clip", description="CLIP for Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_export_command(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `keras-clip` script."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
