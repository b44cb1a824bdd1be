"""OpenAI / open_clip state dicts (OpenAI key names) <-> keras_clip weights.

Example:
    >>> from keras_clip.presets.openai_checkpoint import config_from_state_dict
    >>> config = config_from_state_dict(state_dict)   # doctest: +SKIP
    >>> model = keras_clip.CLIP(config)               # doctest: +SKIP
    >>> load_state_dict(model, state_dict)            # doctest: +SKIP
"""

import keras
import numpy as np

from keras_clip.config import CLIPConfig, ResNetConfig, TextConfig, ViTConfig

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


def _transpose(array):
    return array.T


def _conv(array):
    return array.transpose(2, 3, 1, 0)  # (O, I, kh, kw) -> (kh, kw, I, O)


def _same(array):
    return array


def _dense(targets, prefix, layer, bias=True):
    targets[f"{prefix}.weight"] = (layer.kernel, _transpose)
    if bias:
        targets[f"{prefix}.bias"] = (layer.bias, _same)


def _layer_norm(targets, prefix, layer):
    targets[f"{prefix}.weight"] = (layer.gamma, _same)
    targets[f"{prefix}.bias"] = (layer.beta, _same)


def _batch_norm(targets, prefix, layer):
    _layer_norm(targets, prefix, layer)
    targets[f"{prefix}.running_mean"] = (layer.moving_mean, _same)
    targets[f"{prefix}.running_var"] = (layer.moving_variance, _same)


def _resblocks(targets, prefix, encoder, count):
    for index in range(count):
        block = encoder.get_layer(encoder.block_name(index))
        key = f"{prefix}.{index}"
        _layer_norm(targets, f"{key}.ln_1", block.ln_1)
        targets[f"{key}.attn.in_proj_weight"] = (block.attn.in_proj.kernel, _transpose)
        targets[f"{key}.attn.in_proj_bias"] = (block.attn.in_proj.bias, _same)
        _dense(targets, f"{key}.attn.out_proj", block.attn.out_proj)
        _layer_norm(targets, f"{key}.ln_2", block.ln_2)
        _dense(targets, f"{key}.mlp.c_fc", block.c_fc)
        _dense(targets, f"{key}.mlp.c_proj", block.c_proj)


def _vit_targets(targets, encoder):
    config = encoder.config
    targets["visual.conv1.weight"] = (encoder.get_layer("conv1").kernel, _conv)
    embeddings = encoder.get_layer("embeddings")
    targets["visual.class_embedding"] = (embeddings.class_embedding, _same)
    targets["visual.positional_embedding"] = (embeddings.positional_embedding, _same)
    _layer_norm(targets, "visual.ln_pre", encoder.get_layer("ln_pre"))
    _resblocks(targets, "visual.transformer.resblocks", encoder, config.layers)
    _layer_norm(targets, "visual.ln_post", encoder.get_layer("ln_post"))
    targets["visual.proj"] = (encoder.get_layer("proj").kernel, _same)


def _resnet_targets(targets, encoder):
    for index in (1, 2, 3):
        targets[f"visual.conv{index}.weight"] = (encoder.get_layer(f"conv{index}").kernel, _conv)
        _batch_norm(targets, f"visual.bn{index}", encoder.get_layer(f"bn{index}"))
    for stage, depth in enumerate(encoder.config.layers, start=1):
        for index in range(depth):
            block = encoder.get_layer(encoder.block_name(stage, index))
            key = f"visual.layer{stage}.{index}"
            for part in (1, 2, 3):
                targets[f"{key}.conv{part}.weight"] = (getattr(block, f"conv{part}").kernel, _conv)
                _batch_norm(targets, f"{key}.bn{part}", getattr(block, f"bn{part}"))
            if block.has_downsample:
                targets[f"{key}.downsample.0.weight"] = (block.downsample_conv.kernel, _conv)
                _batch_norm(targets, f"{key}.downsample.1", block.downsample_bn)
    pool = encoder.get_layer("attnpool")
    targets["visual.attnpool.positional_embedding"] = (pool.positional_embedding, _same)
    for name in ("q_proj", "k_proj", "v_proj", "c_proj"):
        _dense(targets, f"visual.attnpool.{name}", getattr(pool, name))


def _text_targets(targets, encoder):
    embeddings = encoder.get_layer("embeddings")
    targets["token_embedding.weight"] = (embeddings.token_embedding, _same)
    targets["positional_embedding"] = (embeddings.positional_embedding, _same)
    _resblocks(targets, "transformer.resblocks", encoder, encoder.config.layers)
    _layer_norm(targets, "ln_final", encoder.get_layer("ln_final"))
    targets["text_projection"] = (encoder.get_layer("text_projection").kernel, _same)


def weight_targets(model):
    """Maps each OpenAI key to `(keras variable, numpy transform)` for `model`."""
    targets = {}
    if isinstance(model.config.vision, ResNetConfig):
        _resnet_targets(targets, model.image_encoder)
    else:
        _vit_targets(targets, model.image_encoder)
    _text_targets(targets, model.text_encoder)
    targets["logit_scale"] = (model.contrastive_logits.logit_scale, _same)
    return targets


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


def state_dict_from_model(model):
    """The inverse of `load_state_dict`: `model`'s weights under OpenAI key names."""
    inverse = {_transpose: _transpose, _same: _same, _conv: lambda a: a.transpose(3, 2, 0, 1)}
    state_dict = {}
    for key, (variable, transform) in weight_targets(model).items():
        value = keras.ops.convert_to_numpy(variable)
        # np.array keeps 0-d tensors (logit_scale) 0-d; np.ascontiguousarray makes them 1-d.
        state_dict[key] = np.array(inverse[transform](value.astype("float32")), order="C")
    return state_dict
