"""`keras-clip presets`: list the built-in architectures and where their weights come from.

Example:
    $ keras-clip presets --json
"""

import json

PARSER = {"help": "List the built-in architectures."}


def add_arguments(parser):
    """Adds `--json` to the argparse parser `parser`."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def rows():
    """One dict per built-in preset: tower, image size, embedding size, weights."""
    from keras_clip.presets import list_presets, preset_config
    from keras_clip.presets.download import weight_sources

    sources = weight_sources()
    found = []
    for name in list_presets():
        config = preset_config(name)
        source = sources.get(name, {})
        found.append({
            "preset": name, "image tower": config.vision.type,
            "image size": config.vision.image_size, "embed": config.embed_dim,
            "weights": source.get("repo_id", "-"),
            "pinned": "yes" if source.get("sha256") else "no",
            "ImageNet zero-shot": source.get("imagenet_zero_shot_top1", "-"),
        })
    return found


def run(args):
    """Prints the presets as a table (or JSON); returns 0."""
    table = rows()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    headers = list(table[0])
    widths = [max(len(h), *(len(str(r[h])) for r in table)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for row in table:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths)))
    return 0
