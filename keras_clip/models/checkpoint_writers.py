"""Writes a CLIP model out as an open_clip file or a transformers `CLIPModel` folder.

`save_open_clip` writes OpenAI key names (`openai_keys.state_dict_from_model`)
to one `.safetensors` file, which `open_clip.create_model(name, pretrained=path)`
loads. `save_transformers` renames the same tensors into transformers'
layout (Q/K/V split, projections transposed) and writes `config.json`,
`preprocessor_config.json` and `model.safetensors`, which `transformers.CLIPModel.from_pretrained` loads
(ViT image towers only: transformers has no ResNet CLIP).

Example:
    >>> model = keras_clip.from_preset("vit_b32_laion2b")   # doctest: +SKIP
    >>> save_open_clip(model, "vit_b32_laion2b.safetensors")  # doctest: +SKIP
    >>> save_transformers(model, "vit_b32_laion2b_hf")         # doctest: +SKIP
"""

import json
import os

import numpy as np

from keras_clip.config import ViTConfig
from keras_clip.image_processor_config import image_processor_values
from keras_clip.models.openai_keys import state_dict_from_model

_LAYER_RENAMES = {  # transformers name -> OpenAI name, inside one residual block
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _write_safetensors(arrays, path):
    from safetensors.numpy import save_file

    arrays = {key: np.ascontiguousarray(value, dtype="float32") if value.ndim else
              np.asarray(value, "float32") for key, value in arrays.items()}
    save_file(arrays, path, metadata={"format": "pt"})


def save_open_clip(model, path):
    """Writes `model`'s weights as an open_clip `.safetensors` file (OpenAI key names).

    Args:
        model: a `keras_clip.CLIP`.
        path: the file to write; must end in `.safetensors`.

    Example:
        >>> save_open_clip(model, "model.safetensors")  # doctest: +SKIP
        >>> # open_clip.create_model("ViT-B-32", pretrained="model.safetensors")
    """
    path = os.fspath(path)
    if not path.endswith(".safetensors"):
        raise ValueError(f"save_open_clip writes a .safetensors file, received the path {path!r}.")
    _write_safetensors(state_dict_from_model(model), path)


def _split_blocks(state_dict, openai_prefix, prefix, count, out):
    for index in range(count):
        src, dst = f"{openai_prefix}.{index}", f"{prefix}.encoder.layers.{index}"
        for name, array in zip("qkv", np.split(state_dict[f"{src}.attn.in_proj_weight"], 3)):
            out[f"{dst}.self_attn.{name}_proj.weight"] = array
        for name, array in zip("qkv", np.split(state_dict[f"{src}.attn.in_proj_bias"], 3)):
            out[f"{dst}.self_attn.{name}_proj.bias"] = array
        for new, old in _LAYER_RENAMES.items():
            for part in ("weight", "bias"):
                out[f"{dst}.{new}.{part}"] = state_dict[f"{src}.{old}.{part}"]


def transformers_state_dict(state_dict, config):
    """An OpenAI-format ViT CLIP state dict renamed into transformers' `CLIPModel` keys."""
    out = {
        "text_model.embeddings.token_embedding.weight": state_dict["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state_dict["positional_embedding"],
        "vision_model.embeddings.class_embedding": state_dict["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state_dict["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight":
            state_dict["visual.positional_embedding"],
        "text_projection.weight": state_dict["text_projection"].T,
        "visual_projection.weight": state_dict["visual.proj"].T,
        "logit_scale": state_dict["logit_scale"],
    }
    for part in ("weight", "bias"):
        out[f"text_model.final_layer_norm.{part}"] = state_dict[f"ln_final.{part}"]
        out[f"vision_model.pre_layrnorm.{part}"] = state_dict[f"visual.ln_pre.{part}"]
        out[f"vision_model.post_layernorm.{part}"] = state_dict[f"visual.ln_post.{part}"]
    _split_blocks(state_dict, "transformer.resblocks", "text_model", config.text.layers, out)
    _split_blocks(state_dict, "visual.transformer.resblocks", "vision_model",
                  config.vision.layers, out)
    return out


def _encoder_section(section):
    return {
        "hidden_size": section.width,
        "intermediate_size": section.mlp_dim,
        "num_hidden_layers": section.layers,
        "num_attention_heads": section.heads,
        "hidden_act": section.activation,
        "layer_norm_eps": section.layer_norm_epsilon,
    }


def transformers_config(config, logit_scale=None):
    """The transformers `CLIPConfig` dict (`config.json`) of a ViT `CLIPConfig`.

    Pooling: transformers pools the text at the first `eos_token_id`, so the end
    token is the highest id (`vocab_size - 1`), as in CLIP's vocabulary.
    """
    text, vision = config.text, config.vision
    values = {
        "model_type": "clip",
        "architectures": ["CLIPModel"],
        "projection_dim": config.embed_dim,
        "text_config": {
            **_encoder_section(text),
            "vocab_size": text.vocab_size,
            "max_position_embeddings": text.context_length,
            "bos_token_id": text.vocab_size - 2,
            "eos_token_id": text.vocab_size - 1,
            "pad_token_id": 0,
            "projection_dim": config.embed_dim,
        },
        "vision_config": {
            **_encoder_section(vision),
            "image_size": vision.image_size,
            "patch_size": vision.patch_size,
            "num_channels": 3,
            "projection_dim": config.embed_dim,
        },
    }
    if logit_scale is not None:
        values["logit_scale_init_value"] = float(logit_scale)
    return values


def save_transformers(model, folder):
    """Writes `model` as a transformers `CLIPModel` folder (`config.json`, `model.safetensors`).

    `preprocessor_config.json` (a `CLIPImageProcessor`) carries the weights'
    image preprocessing: mean, std and resize mode.

    Args:
        model: a `keras_clip.CLIP` with a ViT image tower.
        folder: the folder to write (created if missing).

    Example:
        >>> save_transformers(model, "clip_hf")  # doctest: +SKIP
        >>> # transformers.CLIPModel.from_pretrained("clip_hf")
    """
    config = model.config
    if not isinstance(config.vision, ViTConfig):
        raise ValueError(f"save_transformers needs a ViT image tower; '{config.name}' has a "
                         f"{config.vision.type!r} one, which transformers' CLIPModel lacks. "
                         "Use save_open_clip instead.")
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    state_dict = state_dict_from_model(model)
    values = transformers_config(config, logit_scale=state_dict["logit_scale"])
    processor = image_processor_values(config.preprocessing, config.vision.image_size)
    for name, contents in (("config.json", values), ("preprocessor_config.json", processor)):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as file:
            json.dump(contents, file, indent=2)
            file.write("\n")
    _write_safetensors(transformers_state_dict(state_dict, config),
                       os.path.join(folder, "model.safetensors"))
