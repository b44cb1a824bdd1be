"""`keras-clip convert`: move a checkpoint between keras_clip, open_clip and transformers.

Example:
    $ keras-clip convert ViT-H-14.safetensors vit_h14/ --config vit_h14_laion2b
    $ keras-clip convert vit_h14/ vit_h14_hf/ --to transformers
    $ keras-clip convert vit_h14/ back.safetensors --to open_clip
"""

import os

PARSER = {
    "help": "Convert a checkpoint (keras_clip preset folder, open_clip file, transformers folder).",
    "description": "Reads SRC (a preset name, a keras_clip preset folder, an OpenAI/open_clip "
                   "checkpoint or a transformers CLIP folder) and writes DST as a keras_clip "
                   "preset folder, an open_clip .safetensors file or a transformers folder.\n\n"
                   "Example:\n"
                   "  keras-clip convert ViT-H-14.safetensors vit_h14/ --config vit_h14_laion2b\n"
                   "  keras-clip convert vit_h14/ vit_h14_hf/ --to transformers",
}
TARGETS = ("keras", "open_clip", "transformers")


def add_arguments(parser):
    """Adds SRC, DST, `--config` and `--to` to the argparse parser `parser`."""
    parser.add_argument("src", help="preset name, preset folder, checkpoint file or "
                        "transformers folder")
    parser.add_argument("dst", help="file or folder to write (must not exist)")
    parser.add_argument("--config", help="the architecture SRC holds, where its shapes cannot "
                        "tell: a preset name or a config JSON path")
    parser.add_argument("--to", choices=TARGETS, help="output format; when not given: "
                        "open_clip for a DST ending in .safetensors, else keras")


def target(args):
    """The output format: `--to`, else guessed from DST's extension."""
    if args.to:
        return args.to
    return "open_clip" if args.dst.endswith(".safetensors") else "keras"


def run(args):
    """Converts SRC into DST; returns 0."""
    from keras_clip.presets import from_preset
    from keras_clip.presets.catalog import check_preset_or_path

    check_preset_or_path(args.src, "SRC")
    if args.config is not None:
        check_preset_or_path(args.config, "--config")
    if os.path.lexists(args.dst):
        raise OSError(f"{args.dst} already exists; convert writes a new file or folder.")
    to = target(args)
    if to == "open_clip" and not args.dst.endswith(".safetensors"):
        raise ValueError(f"--to open_clip writes a .safetensors file, received DST {args.dst!r}.")
    model = from_preset(args.src, config=args.config)
    if to == "keras":
        model.save_to_preset(args.dst)
    elif to == "open_clip":
        model.save_open_clip(args.dst)
    else:
        model.save_transformers(args.dst)
    print(f"wrote {args.dst} ({to}, architecture '{model.config.name}')")
    return 0
