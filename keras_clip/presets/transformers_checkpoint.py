"""Hugging Face transformers CLIP folders (ViT models) -> OpenAI key names.

A folder holds `config.json` and `model.safetensors` (or `pytorch_model.bin`),
and usually `preprocessor_config.json`, whose mean, std and resize mode become
the config's `preprocessing`.
The weights are renamed into OpenAI's layout (Q/K/V fused into `in_proj`,
projections transposed) and then loaded like any OpenAI checkpoint.
"""

import dataclasses
import os

import numpy as np

from keras_clip.config import ACTIVATIONS, CLIPConfig, TextConfig, ViTConfig
from keras_clip.image_processor_config import preprocessing_from_image_processor
from keras_clip.presets.checkpoint_files import read_state_dict
from keras_clip.models.preset_folder import read_json_object

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_transformers_folder(path):
    """True if `path` looks like a transformers CLIP checkpoint folder."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    return read_json_object(config).get("model_type") == "clip"


def _section(values, key, source):
    section = values.get(key)
    if not isinstance(section, dict):
        raise ValueError(f"{source} lacks its {key!r} object; expected a transformers "
                         "CLIPConfig with vision_config and text_config.")
    return section


def _activation(section, where):
    name = section.get("hidden_act", "quick_gelu")
    if name not in ACTIVATIONS:
        raise ValueError(f"Unsupported {where}.hidden_act {name!r}; expected one of {ACTIVATIONS}.")
    return name


def config_from_transformers(values, name="clip", source="The transformers config"):
    """Builds a `CLIPConfig` from a transformers `CLIPConfig` dict.

    `source` names the config in error messages (e.g. its file).
    """
    vision = _section(values, "vision_config", source)
    text = _section(values, "text_config", source)
    try:
        return _clip_config(values, vision, text, name)
    except KeyError as error:
        raise ValueError(f"{source} lacks the key {error.args[0]!r} in its vision_config or "
                         "text_config.") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None


def _encoder_fields(section, where):
    """The transformer fields both towers share, from a transformers config section."""
    return dict(
        width=section["hidden_size"],
        layers=section["num_hidden_layers"],
        heads=section["num_attention_heads"],
        mlp_dim=section["intermediate_size"],
        activation=_activation(section, where),
        layer_norm_epsilon=section.get("layer_norm_eps", 1e-5),
    )


def _clip_config(values, vision, text, name):
    return CLIPConfig(
        embed_dim=values.get("projection_dim", 512),
        name=name,
        vision=ViTConfig(
            image_size=vision["image_size"],
            patch_size=vision["patch_size"],
            **_encoder_fields(vision, "vision_config"),
        ),
        text=TextConfig(
            context_length=text["max_position_embeddings"],
            vocab_size=text["vocab_size"],
            **_encoder_fields(text, "text_config"),
        ),
    )


def _encoder_layers(hf, prefix, openai_prefix, count, out):
    for index in range(count):
        src, dst = f"{prefix}.encoder.layers.{index}", f"{openai_prefix}.{index}"
        attention = f"{src}.self_attn"
        out[f"{dst}.attn.in_proj_weight"] = np.concatenate(
            [hf.pop(f"{attention}.{p}_proj.weight") for p in "qkv"], axis=0
        )
        out[f"{dst}.attn.in_proj_bias"] = np.concatenate(
            [hf.pop(f"{attention}.{p}_proj.bias") for p in "qkv"], axis=0
        )
        renames = {
            "self_attn.out_proj": "attn.out_proj",
            "layer_norm1": "ln_1",
            "layer_norm2": "ln_2",
            "mlp.fc1": "mlp.c_fc",
            "mlp.fc2": "mlp.c_proj",
        }
        for old, new in renames.items():
            for part in ("weight", "bias"):
                out[f"{dst}.{new}.{part}"] = hf.pop(f"{src}.{old}.{part}")


def openai_state_dict(hf, config):
    """Renames a transformers CLIP state dict into OpenAI's key names."""
    hf = dict(hf)
    hf.pop("text_model.embeddings.position_ids", None)
    hf.pop("vision_model.embeddings.position_ids", None)
    out = {}
    try:
        out["token_embedding.weight"] = hf.pop("text_model.embeddings.token_embedding.weight")
        out["positional_embedding"] = hf.pop("text_model.embeddings.position_embedding.weight")
        _encoder_layers(hf, "text_model", "transformer.resblocks", config.text.layers, out)
        for part in ("weight", "bias"):
            out[f"ln_final.{part}"] = hf.pop(f"text_model.final_layer_norm.{part}")
            out[f"visual.ln_pre.{part}"] = hf.pop(f"vision_model.pre_layrnorm.{part}")
            out[f"visual.ln_post.{part}"] = hf.pop(f"vision_model.post_layernorm.{part}")
        out["text_projection"] = hf.pop("text_projection.weight").T
        out["visual.class_embedding"] = hf.pop("vision_model.embeddings.class_embedding")
        out["visual.conv1.weight"] = hf.pop("vision_model.embeddings.patch_embedding.weight")
        out["visual.positional_embedding"] = hf.pop(
            "vision_model.embeddings.position_embedding.weight"
        )
        _encoder_layers(
            hf, "vision_model", "visual.transformer.resblocks", config.vision.layers, out
        )
        out["visual.proj"] = hf.pop("visual_projection.weight").T
        out["logit_scale"] = hf.pop("logit_scale")
    except KeyError as error:
        raise ValueError(f"The transformers checkpoint lacks the tensor {error.args[0]!r}.") from None
    if hf:
        raise ValueError(f"Unexpected tensors in the transformers checkpoint: {sorted(hf)}")
    return out


def read_transformers_folder(path, name="clip"):
    """Returns `(CLIPConfig, OpenAI-format state dict)` for a transformers folder."""
    config_file = os.path.join(path, "config.json")
    config = config_from_transformers(read_json_object(config_file), name=name,
                                      source=config_file)
    processor_file = os.path.join(path, "preprocessor_config.json")
    if os.path.isfile(processor_file):  # the weights' mean, std and resize mode
        preprocessing = preprocessing_from_image_processor(read_json_object(processor_file),
                                                           source=processor_file)
        config = dataclasses.replace(config, preprocessing=preprocessing)
    for filename in WEIGHT_FILES:
        weights = os.path.join(path, filename)
        if os.path.isfile(weights):
            return config, openai_state_dict(read_state_dict(weights), config)
    raise ValueError(f"{path} has a config.json but none of the weight files {WEIGHT_FILES}.")
