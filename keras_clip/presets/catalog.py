"""The built-in presets: names, configs (`configs/*.json`), weight sources, close-name suggestions.

Reads only JSON: no Keras backend is imported.

Example:
    >>> preset_config("vit_b32_laion2b").vision.activation
    'gelu'
"""

import difflib
import json
import os
from importlib import resources

from keras_clip.config import CLIPConfig


def suggest(name, names):
    """`" Did you mean 'a', 'b'?"` for the names of `names` closest to `name`, or `""`."""
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def check_preset_or_path(spec, flag):
    """Raises a ValueError naming `flag` unless `spec` is a built-in preset or an existing path.

    The message suggests the closest preset names.

    Example:
        >>> check_preset_or_path("vit_b3", "--model")  # doctest: +SKIP
        ValueError: --model 'vit_b3' is neither a built-in preset nor an existing file
        or folder. Did you mean 'vit_b32', 'vit_b16', 'vit_l14'?
    """
    if spec not in list_presets() and not os.path.exists(spec):
        raise ValueError(f"{flag} {spec!r} is neither a built-in preset nor an existing file or "
                         "folder." + (suggest(spec, list_presets()) or
                                      " See `keras-clip presets` for the names."))


def list_presets():
    """Names of the built-in presets: OpenAI's nine models and the open_clip ViT weights."""
    folder = resources.files("keras_clip.presets").joinpath("configs")
    return sorted(
        entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json")
    )


def preset_config(name):
    """The `CLIPConfig` of the built-in preset `name`."""
    if name not in list_presets():
        raise ValueError(f"Unknown preset {name!r}." + (suggest(name, list_presets()) or
                         f" Known presets: {', '.join(list_presets())}."))
    path = resources.files("keras_clip.presets").joinpath("configs", f"{name}.json")
    with resources.as_file(path) as file:
        return CLIPConfig.from_json(file)


def weight_sources():
    """`{preset name: {"repo_id", "filename", "revision", "sha256", ...}}`.

    `revision` is a commit hash, or `"main"` where no pinned commit is known;
    `sha256` and `size_bytes` describe the file, or are None where unknown.
    Keys starting with `_` (such as `_source`) document where a pin was read.
    """
    text = resources.files("keras_clip.presets").joinpath("weights.json").read_text()
    return json.loads(text)
