"""Built-in presets and `from_preset` for every supported source.

Example:
    >>> import keras_clip
    >>> "vit_b32" in keras_clip.list_presets()
    True
    >>> model = keras_clip.from_preset("rn50", weights=None)
"""

import inspect
import os

from keras_clip.presets.catalog import list_presets, preset_config, suggest

LAYER_KWARGS = ("name", "trainable")  # what keras.Model takes besides CLIP's own options


def from_preset(preset, weights=True, dtype=None, config=None, **model_kwargs):
    """Builds a CLIP model from a preset name, a saved folder or a checkpoint.

    Args:
        preset: a built-in name (`list_presets()`), a folder written by
            `save_to_preset`, an OpenAI/open_clip checkpoint file (`.safetensors`,
            `.bin`, `.pt`, `.pth`) or a transformers CLIP folder.
        weights: for built-in names, download the pretrained weights (True) or
            build with random weights (False/None). Paths always load their weights.
        dtype: optional dtype policy, e.g. `"bfloat16"` for fast inference.
        config: for a checkpoint file or transformers folder, the architecture
            it holds: a preset name, a config JSON path or a `CLIPConfig`;
            every tensor shape is checked against it. Needed where shapes
            cannot tell heads or activation (see `presets.config_match`).
        **model_kwargs: model options passed to `CLIP(...)` for every source,
            e.g. `remat=True` (gradient checkpointing) or `name=...`.

    Example:
        >>> model = from_preset("vit_b32", weights=None)
        >>> model = from_preset("open_clip_model.safetensors", remat=True)  # doctest: +SKIP
        >>> model = from_preset("vit_h14.safetensors", config="vit_h14_laion2b")  # doctest: +SKIP
    """
    from keras_clip.models import CLIP
    from keras_clip.models.preset_folder import is_preset_folder
    from keras_clip.presets import (
        config_match,
        openai_checkpoint,
        transformers_checkpoint,
    )
    from keras_clip.presets.checkpoint_files import read_state_dict

    if not isinstance(preset, (str, os.PathLike)):
        raise ValueError(f"`preset` must be a name or a path, received {type(preset).__name__}.")
    check_model_kwargs(model_kwargs)
    preset = os.fspath(preset)
    if preset in list_presets():
        if config is not None:
            raise ValueError(f"config= is for checkpoint files and transformers folders; the "
                             f"preset {preset!r} has its own config.")
        config = preset_config(preset)
        if not weights:
            return CLIP(config, dtype=dtype, **model_kwargs)
        from keras_clip.presets.download import load_pretrained

        return load_pretrained(preset, config, dtype=dtype, **model_kwargs)
    if os.path.isdir(preset):
        if is_preset_folder(preset):
            if config is not None:
                raise ValueError(f"config= is for checkpoint files and transformers folders; "
                                 f"the preset folder {preset} has its own config.json.")
            return CLIP.from_preset_folder(preset, dtype=dtype, **model_kwargs)
        if transformers_checkpoint.is_transformers_folder(preset):
            own, state_dict = transformers_checkpoint.read_transformers_folder(preset)
            config = config_match.choose_config(state_dict, own, preset, config or own)
        else:
            raise ValueError(
                f"{preset} is neither a keras_clip preset folder (config.json + "
                "model.weights.h5) nor a transformers CLIP folder (config.json with "
                "model_type 'clip' + model.safetensors)."
            )
    elif os.path.isfile(preset):
        state_dict = read_state_dict(preset)
        name = os.path.splitext(os.path.basename(preset))[0]
        inferred = openai_checkpoint.config_from_state_dict(state_dict, name=name)
        config = config_match.choose_config(state_dict, inferred, preset, config)
        if "logit_bias" in state_dict:  # a SigLIP model (open_clip's key)
            model_kwargs = {"loss": "sigmoid", **model_kwargs}
    else:
        raise ValueError(
            f"Unknown preset {preset!r}: not a built-in name ({', '.join(list_presets())}) "
            "and no such file or folder." + suggest(preset, list_presets())
        )
    model = CLIP(config, dtype=dtype, **model_kwargs)
    openai_checkpoint.load_state_dict(model, state_dict)
    return model


def check_model_kwargs(model_kwargs):
    """Raises a ValueError naming any key of `model_kwargs` that `CLIP(...)` does not take.

    Checked before anything is read or downloaded (Keras would ignore an unknown one).

    Example:
        >>> check_model_kwargs({"remat": True})
    """
    from keras_clip.models import CLIP

    known = [name for name in inspect.signature(CLIP.__init__).parameters
             if name not in ("self", "config", "dtype", "kwargs")] + list(LAYER_KWARGS)
    unknown = sorted(set(model_kwargs) - set(known))
    if unknown:
        raise ValueError(f"Unknown model option(s) {', '.join(map(repr, unknown))} for "
                         f"from_preset; expected any of: {', '.join(known)}.")
