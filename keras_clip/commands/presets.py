"""`keras-clip presets`: list the built-in presets by family and where their weights come from.

Example:
    $ keras-clip presets --json
"""

import json

PARSER = {"help": "List the built-in presets (OpenAI, LAION-2B, DataComp-XL, DFN, MetaCLIP)."}
FAMILIES = ("OpenAI", "LAION-2B", "DataComp-XL", "DFN", "MetaCLIP")


def add_arguments(parser):
    """Adds `--json` to the argparse parser `parser`."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def rows():
    """One dict per built-in preset, grouped by family: tower, sizes, weights, licence."""
    from keras_clip.presets import list_presets, preset_config
    from keras_clip.presets.download import weight_sources

    sources = weight_sources()
    found = []
    for name in list_presets():
        config = preset_config(name)
        source = sources.get(name, {})
        found.append({
            "family": source.get("family", "-"), "preset": name, "image tower": config.vision.type,
            "image size": config.vision.image_size, "embed": config.embed_dim,
            "weights": source.get("repo_id", "-"),
            "pinned": "yes" if source.get("sha256") else "no",
            "ImageNet zero-shot": source.get("imagenet_zero_shot_top1") or "-",
            "licence": source.get("licence") or "-",
        })
    order = {family: index for index, family in enumerate(FAMILIES)}
    return sorted(found, key=lambda row: order.get(row["family"], len(FAMILIES)))


def run(args):
    """Prints the presets as a table (or JSON); returns 0."""
    table = rows()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    headers = list(table[0])
    widths = [max(len(h), *(len(str(r[h])) for r in table)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for index, row in enumerate(table):
        if index and row["family"] != table[index - 1]["family"]:
            print()
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths)))
    return 0
