"""Built-in presets and `from_preset` for every supported source.

Example:
    >>> import keras_clip
    >>> "vit_b32" in keras_clip.list_presets()
    True
    >>> model = keras_clip.from_preset("rn50", weights=None)
"""

import os
from importlib import resources

from keras_clip.config import CLIPConfig


def list_presets():
    """Names of the built-in architectures (the nine OpenAI CLIP models)."""
    folder = resources.files("keras_clip.presets").joinpath("configs")
    return sorted(
        entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json")
    )


def preset_config(name):
    """The `CLIPConfig` of the built-in preset `name`."""
    if name not in list_presets():
        raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(list_presets())}.")
    path = resources.files("keras_clip.presets").joinpath("configs", f"{name}.json")
    with resources.as_file(path) as file:
        return CLIPConfig.from_json(file)


def from_preset(preset, weights=True, dtype=None):
    """Builds a CLIP model from a preset name, a saved folder or a checkpoint.

    Args:
        preset: a built-in name (`list_presets()`), a folder written by
            `save_to_preset`, an OpenAI/open_clip checkpoint file (`.safetensors`,
            `.bin`, `.pt`, `.pth`) or a transformers CLIP folder.
        weights: for built-in names, download the pretrained weights (True) or
            build with random weights (False/None). Paths always load their weights.
        dtype: optional dtype policy, e.g. `"bfloat16"` for fast inference.

    Example:
        >>> model = from_preset("vit_b32", weights=None)
        >>> model = from_preset("open_clip_model.safetensors")  # doctest: +SKIP
    """
    from keras_clip.models import CLIP
    from keras_clip.models.preset_folder import is_preset_folder
    from keras_clip.presets import openai_checkpoint, transformers_checkpoint
    from keras_clip.presets.checkpoint_files import read_state_dict

    if not isinstance(preset, (str, os.PathLike)):
        raise ValueError(f"`preset` must be a name or a path, received {type(preset).__name__}.")
    preset = os.fspath(preset)
    if preset in list_presets():
        config = preset_config(preset)
        if not weights:
            return CLIP(config, dtype=dtype)
        from keras_clip.presets.download import load_pretrained

        return load_pretrained(preset, config, dtype=dtype)
    if os.path.isdir(preset):
        if is_preset_folder(preset):
            return CLIP.from_preset_folder(preset, dtype=dtype)
        if transformers_checkpoint.is_transformers_folder(preset):
            config, state_dict = transformers_checkpoint.read_transformers_folder(preset)
        else:
            raise ValueError(
                f"{preset} is neither a keras_clip preset folder (config.json + "
                "model.weights.h5) nor a transformers CLIP folder (config.json with "
                "model_type 'clip' + model.safetensors)."
            )
    elif os.path.isfile(preset):
        state_dict = read_state_dict(preset)
        name = os.path.splitext(os.path.basename(preset))[0]
        config = openai_checkpoint.config_from_state_dict(state_dict, name=name)
    else:
        raise ValueError(
            f"Unknown preset {preset!r}: not a built-in name ({', '.join(list_presets())}) "
            "and no such file or folder."
        )
    model = CLIP(config, dtype=dtype)
    openai_checkpoint.load_state_dict(model, state_dict)
    return model
