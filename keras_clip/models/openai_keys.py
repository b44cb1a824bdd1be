"""The OpenAI / open_clip key map of a CLIP model's weights, both ways.

`weight_targets(model)` is the one table: each OpenAI key name (as in
open_clip's `state_dict()`) -> `(keras variable, numpy transform)`.
`state_dict_from_model` reads it backwards. The readers that turn files into
state dicts live in `keras_clip.presets`; this module only knows the model.

Example:
    >>> state_dict = state_dict_from_model(model)  # doctest: +SKIP
    >>> state_dict["visual.proj"].shape            # doctest: +SKIP
    (768, 512)
"""

import keras
import numpy as np

from keras_clip.config import ResNetConfig


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
    if getattr(model, "logit_bias_layer", None) is not None:  # SigLIP; open_clip's key
        targets["logit_bias"] = (model.logit_bias_layer.logit_bias, _same)
    return targets


def state_dict_from_model(model):
    """The inverse of `load_state_dict`: `model`'s weights under OpenAI key names."""
    inverse = {_transpose: _transpose, _same: _same, _conv: lambda a: a.transpose(3, 2, 0, 1)}
    state_dict = {}
    for key, (variable, transform) in weight_targets(model).items():
        value = keras.ops.convert_to_numpy(variable)
        # np.array keeps 0-d tensors (logit_scale) 0-d; np.ascontiguousarray makes them 1-d.
        state_dict[key] = np.array(inverse[transform](value.astype("float32")), order="C")
    return state_dict
