"""The preset folder format: `config.json` (the model config) plus `model.weights.h5`.

`CLIP.save_to_preset` writes one and `CLIP.from_preset_folder` reads one; this
module knows the files, not the model class.

Example:
    >>> model.save_to_preset("my_preset")  # doctest: +SKIP
    >>> is_preset_folder("my_preset")  # doctest: +SKIP
    True
"""

import json
import os

from keras_clip.config import CLIPConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
FORMAT_VERSION = 1


def is_preset_folder(path):
    """True if `path` is a folder written by `CLIP.save_to_preset`."""
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(
        os.path.join(path, WEIGHTS_FILE)
    )


def write_preset_folder(model, path):
    """Writes `model`'s config and weights to the folder `path` (created if needed)."""
    os.makedirs(path, exist_ok=True)
    values = {"format_version": FORMAT_VERSION, "clip": model.config.to_dict(),
              "loss": model.contrastive_loss}
    with open(os.path.join(path, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(values, file, indent=2)
        file.write("\n")
    model.save_weights(os.path.join(path, WEIGHTS_FILE))


def read_json_object(path):
    """The dict stored in the JSON file `path`; a `ValueError` naming the file otherwise.

    Example:
        >>> values = read_json_object("my_preset/config.json")  # doctest: +SKIP
    """
    try:
        with open(path, encoding="utf-8") as file:
            values = json.load(file)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                         "expected a JSON object.") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, "
                         f"column {error.colno}); expected a JSON object.") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} holds a JSON {type(values).__name__}; expected a JSON "
                         "object ({...}).")
    return values


def read_preset_config(path):
    """The `CLIPConfig` stored in the preset folder `path`'s config.json."""
    config_path = os.path.join(path, CONFIG_FILE)
    values = read_json_object(config_path)
    version = values.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{config_path} has format_version {version!r}; this keras_clip reads "
            f"version {FORMAT_VERSION}. Upgrade keras_clip to read newer presets."
        )
    if not isinstance(values.get("clip"), dict):
        raise ValueError(f"{config_path} lacks its 'clip' object (the model config); "
                         "expected the file save_to_preset writes.")
    try:
        return CLIPConfig.from_dict(values["clip"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_path}: {error}") from None


def read_preset_loss(path):
    """The training loss ("softmax" or "sigmoid") the preset folder `path` records.

    Folders written before the SigLIP loss existed record none: "softmax".
    """
    loss = read_json_object(os.path.join(path, CONFIG_FILE)).get("loss", "softmax")
    if loss not in ("softmax", "sigmoid"):
        raise ValueError(f"{os.path.join(path, CONFIG_FILE)} has loss {loss!r}; expected "
                         "'softmax' or 'sigmoid'.")
    return loss


def load_preset_weights(model, path):
    """Loads the weights of the preset folder `path` into `model` (a clear error if damaged)."""
    weights = os.path.join(path, WEIGHTS_FILE)
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py / keras raise many types for a damaged file
        raise ValueError(
            f"Could not read the weights in {weights} (truncated or corrupt?): {error}"
        ) from error
