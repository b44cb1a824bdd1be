"""`keras-clip presets`: list the built-in presets by family and where their weights come from.

Reads JSON only (no Keras backend): fast.

Example:
    $ keras-clip presets --json
"""

import json
import re

PARSER = {
    "help": "List the built-in presets (OpenAI, LAION-2B, DataComp-XL, DFN, MetaCLIP).",
    "description": "Lists every built-in preset name that from_preset(), --model and --config "
                   "accept, grouped by family: image tower, image size, embedding size, the Hub "
                   "repository of its weights, whether keras_clip pins that file's SHA-256 "
                   "(\"sha256 pinned\": yes = the download is checked against a recorded digest; "
                   "no = only against the Hub's ETag and the architecture), the ImageNet "
                   "zero-shot top-1 open_clip reports, and the licence.\n\n"
                   "Example:\n  keras-clip presets\n  keras-clip presets --json",
}
RUNS_MODEL = False  # no backend: keras-clip leaves TensorFlow's logs alone
FAMILIES = ("OpenAI", "LAION-2B", "DataComp-XL", "DFN", "MetaCLIP")


def add_arguments(parser):
    """Adds `--json` to the argparse parser `parser`."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def natural_key(name):
    """Sort key that orders numbers by value: rn50 before rn101, vit_b16 before vit_b32."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def rows():
    """One dict per built-in preset, grouped by family: tower, sizes, weights, licence."""
    from keras_clip.presets.catalog import list_presets, preset_config, weight_sources

    sources = weight_sources()
    found = []
    for name in list_presets():
        config = preset_config(name)
        source = sources.get(name, {})
        found.append({
            "family": source.get("family", "-"), "preset": name, "image tower": config.vision.type,
            "image size": config.vision.image_size, "embed": config.embed_dim,
            "weights": source.get("repo_id", "-"),
            "sha256 pinned": "yes" if source.get("sha256") else "no",
            "ImageNet zero-shot": source.get("imagenet_zero_shot_top1") or "-",
            "licence": source.get("licence") or "-",
        })
    order = {family: index for index, family in enumerate(FAMILIES)}
    return sorted(found, key=lambda row: (order.get(row["family"], len(FAMILIES)),
                                          natural_key(row["preset"])))


def run(args):
    """Prints the presets as a table (or JSON); returns 0."""
    table = rows()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    headers = list(table[0])
    widths = [max(len(h), *(len(str(r[h])) for r in table)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for index, row in enumerate(table):
        if index and row["family"] != table[index - 1]["family"]:
            print()
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths)).rstrip())
    return 0
