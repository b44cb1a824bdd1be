"""Which architecture a checkpoint holds: `config=` hints and matching shapes to presets.

Tensor shapes cannot tell attention heads or the activation. A checkpoint
whose shapes are one of OpenAI's nine architectures loads as OpenAI's (heads
= width / 64, QuickGELU), with a warning naming the open presets that share
those shapes; shapes that match exactly one other known preset load with it;
shapes that fit several raise, listing them. `config=` settles it: a preset
name, a config JSON path or a `CLIPConfig`, checked tensor by tensor.

Example:
    >>> choose_config(state_dict, config="vit_h14_laion2b")  # doctest: +SKIP
"""

import os
import warnings

from keras_clip.config import CLIPConfig, ViTConfig
from keras_clip.presets.catalog import list_presets, preset_config, suggest
from keras_clip.presets.download import weight_sources


def resolve_config(config):
    """A `CLIPConfig` from a preset name, a config JSON path or a `CLIPConfig`.

    Example:
        >>> resolve_config("vit_b32_laion2b").vision.activation
        'gelu'
    """
    if isinstance(config, CLIPConfig):
        return config
    if not isinstance(config, (str, os.PathLike)):
        raise ValueError("`config` must be a preset name, a config JSON path or a CLIPConfig, "
                         f"received {type(config).__name__}.")
    config = os.fspath(config)
    if config in list_presets():
        return preset_config(config)
    if os.path.isfile(config):
        return CLIPConfig.from_json(config)
    raise ValueError(f"config={config!r} is neither a built-in preset nor a config JSON file."
                     + suggest(config, list_presets()))


def _block_shapes(prefix, width, mlp_dim, count):
    shapes = {}
    for index in range(count):
        key = f"{prefix}.{index}"
        shapes.update({
            f"{key}.ln_1.weight": (width,), f"{key}.ln_1.bias": (width,),
            f"{key}.attn.in_proj_weight": (3 * width, width),
            f"{key}.attn.in_proj_bias": (3 * width,),
            f"{key}.attn.out_proj.weight": (width, width), f"{key}.attn.out_proj.bias": (width,),
            f"{key}.ln_2.weight": (width,), f"{key}.ln_2.bias": (width,),
            f"{key}.mlp.c_fc.weight": (mlp_dim, width), f"{key}.mlp.c_fc.bias": (mlp_dim,),
            f"{key}.mlp.c_proj.weight": (width, mlp_dim), f"{key}.mlp.c_proj.bias": (width,),
        })
    return shapes


def expected_shapes(config):
    """`{OpenAI key: shape}` of a ViT `CLIPConfig`, computed without building a model."""
    vision, text = config.vision, config.text
    width = vision.width
    shapes = {
        "visual.conv1.weight": (width, 3, vision.patch_size, vision.patch_size),
        "visual.class_embedding": (width,),
        "visual.positional_embedding": (vision.grid_size ** 2 + 1, width),
        "visual.ln_pre.weight": (width,), "visual.ln_pre.bias": (width,),
        "visual.ln_post.weight": (width,), "visual.ln_post.bias": (width,),
        "visual.proj": (width, config.embed_dim),
        "token_embedding.weight": (text.vocab_size, text.width),
        "positional_embedding": (text.context_length, text.width),
        "ln_final.weight": (text.width,), "ln_final.bias": (text.width,),
        "text_projection": (text.width, config.embed_dim),
        "logit_scale": (),
    }
    shapes.update(_block_shapes("visual.transformer.resblocks", width, vision.mlp_dim,
                                vision.layers))
    shapes.update(_block_shapes("transformer.resblocks", text.width, text.mlp_dim, text.layers))
    return shapes


def shape_mismatches(state_dict, config):
    """`["key: expected (..), received (..)", ...]` where `state_dict` does not fit `config`.

    ResNet configs return `[]` here: `load_state_dict` checks them on load.
    """
    if not isinstance(config.vision, ViTConfig):
        return []
    expected = expected_shapes(config)
    found = []
    for key, shape in expected.items():
        received = tuple(state_dict[key].shape) if key in state_dict else "missing"
        if received != shape:
            found.append(f"{key}: expected {shape}, received {received}")
    return found


def check_shapes(state_dict, config, source):
    """Raises a ValueError naming the first tensors of `source` that do not fit `config`."""
    mismatches = shape_mismatches(state_dict, config)
    if mismatches:
        more = f" (and {len(mismatches) - 3} more)" if len(mismatches) > 3 else ""
        raise ValueError(f"{source} does not fit the config '{config.name}': "
                         + "; ".join(mismatches[:3]) + more + ".")


def _same_architecture(a, b):
    return {**a.to_dict(), "name": ""} == {**b.to_dict(), "name": ""}


def _openai_match(inferred):
    openai = [n for n, s in weight_sources().items() if s.get("family") == "OpenAI"]
    return [n for n in list_presets() if n in openai and _same_architecture(
        preset_config(n), inferred)]


def _open_matches(state_dict):
    sources = weight_sources()
    names = [n for n in list_presets() if sources.get(n, {}).get("family") != "OpenAI"]
    return [n for n in names if not shape_mismatches(state_dict, preset_config(n))]


def _fits_openai_rule(inferred):
    """True if OpenAI's rule (heads = width / 64, MLP = 4 x width) can describe these shapes."""
    sections = [inferred.text] + ([inferred.vision] if isinstance(inferred.vision, ViTConfig)
                                  else [])
    return all(s.width % 64 == 0 and s.mlp_dim == 4 * s.width for s in sections)


def _no_match_message(state_dict, source):
    vit = [preset_config(n) for n in list_presets()]
    vit = [c for c in vit if isinstance(c.vision, ViTConfig)]
    closest, mismatches = min(((c, shape_mismatches(state_dict, c)) for c in vit),
                              key=lambda pair: len(pair[1]))
    return (f"{source} matches no known config and OpenAI's rule (heads = width / 64, "
            f"MLP = 4 x width) does not fit it; the closest preset '{closest.name}' differs at "
            + "; ".join(mismatches[:3]) + ". Pass config= (a preset name, a config JSON path "
            "or a CLIPConfig) describing the checkpoint.")


def choose_config(state_dict, inferred, source, config=None):
    """The `CLIPConfig` to load `state_dict` with (see the module docstring).

    Args:
        state_dict: OpenAI key names -> arrays.
        inferred: the config read off the shapes (`config_from_state_dict`).
        source: the file, for messages.
        config: optional hint (preset name, JSON path or `CLIPConfig`).
    """
    if config is not None:
        config = resolve_config(config)
        check_shapes(state_dict, config, source)
        return config
    if isinstance(inferred.vision, ViTConfig):
        candidates = _open_matches(state_dict)
    else:
        candidates = []
    if not candidates and not _fits_openai_rule(inferred):
        raise ValueError(_no_match_message(state_dict, source))
    openai = _openai_match(inferred)
    if openai or not candidates:
        if candidates:
            warnings.warn(
                f"{source} has the shapes of OpenAI's '{openai[0]}' and loads "
                f"as it (QuickGELU, heads = width / 64); the open presets "
                f"{', '.join(candidates)} share these shapes with other heads or activation: "
                "pass config='<preset>' if the file is one of them.", stacklevel=4)
        return inferred
    if len(candidates) == 1:
        return preset_config(candidates[0])
    raise ValueError(f"{source} fits several presets that differ in what shapes cannot tell "
                     f"(heads, activation): {', '.join(candidates)}. Pass config='<preset>' "
                     "(or a config JSON path / CLIPConfig).")
