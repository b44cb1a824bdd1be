"""A saved preset folder: `config.json` plus `model.weights.h5`."""

import json
import os

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
FORMAT_VERSION = 1


def is_preset_folder(path):
    """True if `path` is a folder written by `CLIP.save_to_preset`."""
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(
        os.path.join(path, WEIGHTS_FILE)
    )


def save_preset_folder(model, path):
    """Writes `model`'s config and weights to the folder `path` (created if needed)."""
    os.makedirs(path, exist_ok=True)
    values = {"format_version": FORMAT_VERSION, "clip": model.config.to_dict()}
    with open(os.path.join(path, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(values, file, indent=2)
        file.write("\n")
    model.save_weights(os.path.join(path, WEIGHTS_FILE))


def load_preset_folder(path, dtype=None):
    """Builds the CLIP model saved in the folder `path`."""
    from keras_clip.config import CLIPConfig
    from keras_clip.models import CLIP

    with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as file:
        values = json.load(file)
    version = values.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}/{CONFIG_FILE} has format_version {version!r}; this keras_clip reads "
            f"version {FORMAT_VERSION}. Upgrade keras_clip to read newer presets."
        )
    model = CLIP(CLIPConfig.from_dict(values["clip"]), dtype=dtype)
    try:
        model.load_weights(os.path.join(path, WEIGHTS_FILE))
    except Exception as error:  # h5py / keras raise many types for a damaged file
        raise ValueError(
            f"Could not read the weights in {os.path.join(path, WEIGHTS_FILE)} "
            f"(truncated or corrupt?): {error}"
        ) from error
    return model
