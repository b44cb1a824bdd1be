"""OpenAI / open_clip state dicts (OpenAI key names) <-> keras_clip weights.

Example:
    >>> from keras_clip.presets.openai_checkpoint import config_from_state_dict
    >>> config = config_from_state_dict(state_dict)   # doctest: +SKIP
    >>> model = keras_clip.CLIP(config)               # doctest: +SKIP
    >>> load_state_dict(model, state_dict)            # doctest: +SKIP
"""

import numpy as np

from keras_clip.config import CLIPConfig, ResNetConfig, TextConfig, ViTConfig
from keras_clip.models.openai_keys import state_dict_from_model, weight_targets  # noqa: F401

# Entries of OpenAI's TorchScript state dict (and BatchNorm counters) that hold no weights.
_IGNORED_KEYS = ("input_resolution", "context_length", "vocab_size")
_IGNORED_SUFFIXES = (".num_batches_tracked", "attn_mask")


def _count(state_dict, prefix, position):
    return len({k.split(".")[position] for k in state_dict if k.startswith(prefix)})


def config_from_state_dict(state_dict, name="clip"):
    """Reads the architecture off an OpenAI-format state dict's shapes."""
    required = ("text_projection", "positional_embedding", "token_embedding.weight")
    missing = [key for key in required if key not in state_dict]
    if missing:
        raise ValueError(
            f"Not an OpenAI/open_clip CLIP checkpoint: missing tensors {missing} "
            f"(found {len(state_dict)} tensors, e.g. {sorted(state_dict)[:5]})."
        )
    shape = lambda key: tuple(state_dict[key].shape)  # noqa: E731
    if "visual.proj" in state_dict:
        width = shape("visual.conv1.weight")[0]
        patch_size = shape("visual.conv1.weight")[-1]
        grid = round((shape("visual.positional_embedding")[0] - 1) ** 0.5)
        vision = ViTConfig(
            image_size=patch_size * grid,
            width=width,
            layers=_count(state_dict, "visual.transformer.resblocks.", 3),
            patch_size=patch_size,
            heads=max(width // 64, 1),
            mlp_dim=shape("visual.transformer.resblocks.0.mlp.c_fc.weight")[0],
        )
    elif "visual.attnpool.positional_embedding" in state_dict:
        width = shape("visual.layer1.0.conv1.weight")[0]
        grid = round((shape("visual.attnpool.positional_embedding")[0] - 1) ** 0.5)
        vision = ResNetConfig(
            image_size=grid * 32,
            width=width,
            layers=tuple(_count(state_dict, f"visual.layer{b}.", 2) for b in (1, 2, 3, 4)),
        )
    else:
        raise ValueError(
            "Cannot tell the image tower: the checkpoint has neither `visual.proj` (ViT) "
            "nor `visual.attnpool.positional_embedding` (ResNet)."
        )
    text_width = shape("ln_final.weight")[0]
    text = TextConfig(
        width=text_width,
        layers=_count(state_dict, "transformer.resblocks.", 2),
        heads=max(text_width // 64, 1),
        context_length=shape("positional_embedding")[0],
        vocab_size=shape("token_embedding.weight")[0],
        mlp_dim=shape("transformer.resblocks.0.mlp.c_fc.weight")[0],
    )
    return CLIPConfig(embed_dim=shape("text_projection")[1], vision=vision, text=text, name=name)


def _is_ignored(key):
    return key in _IGNORED_KEYS or key.endswith(_IGNORED_SUFFIXES)


def load_state_dict(model, state_dict):
    """Copies an OpenAI-format state dict (numpy arrays) into `model`.

    Raises a ValueError naming every missing, unexpected or mis-shaped tensor.
    """
    targets = weight_targets(model)
    missing = sorted(key for key in targets if key not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in targets and not _is_ignored(k))
    converted, mismatched = [], []
    for key, (variable, transform) in targets.items():
        if key not in state_dict:
            continue
        value = transform(np.asarray(state_dict[key], dtype="float32"))
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(state_dict[key].shape)} -> {tuple(value.shape)}, "
                f"model expects {tuple(variable.shape)}"
            )
        converted.append((variable, value))
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    if mismatched:
        problems.append("mis-shaped tensors: " + "; ".join(mismatched))
    if problems:
        raise ValueError(
            f"The checkpoint does not fit the '{model.config.name}' architecture: "
            + "; ".join(problems)
        )
    for variable, value in converted:
        variable.assign(value.astype(variable.dtype))
