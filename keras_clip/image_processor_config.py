"""transformers' `preprocessor_config.json` (a `CLIPImageProcessor`) <-> `PreprocessingConfig`.

A transformers CLIP folder states its image preprocessing in
`preprocessor_config.json`: shortest-edge resize + center crop (or a fixed
height/width resize without crop: open_clip's "squash"), bicubic (`resample`
3, PIL's code), `/ 255`, then `image_mean`/`image_std`.

Example:
    >>> from keras_clip.config import PreprocessingConfig
    >>> values = image_processor_values(PreprocessingConfig(), 224)
    >>> values["size"], values["crop_size"]
    ({'shortest_edge': 224}, {'height': 224, 'width': 224})
    >>> preprocessing_from_image_processor(values) == PreprocessingConfig()
    True
"""

from keras_clip.config import PreprocessingConfig

PIL_BICUBIC = 3  # PIL.Image.Resampling.BICUBIC, transformers' `resample`


def image_processor_values(preprocessing, image_size):
    """The `preprocessor_config.json` dict of a `CLIPImageProcessor` doing `preprocessing`."""
    squash = preprocessing.resize_mode == "squash"
    side = int(image_size)
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"height": side, "width": side} if squash else {"shortest_edge": side},
        "resample": PIL_BICUBIC,
        "do_center_crop": not squash,
        "crop_size": {"height": side, "width": side},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(preprocessing.mean),
        "image_std": list(preprocessing.std),
    }


def preprocessing_from_image_processor(values, source="preprocessor_config.json"):
    """The `PreprocessingConfig` a `CLIPImageProcessor` dict describes.

    Raises a ValueError naming `source` for preprocessing keras_clip does not
    implement (another filter than bicubic, or no resize).
    """
    resample = values.get("resample", PIL_BICUBIC)
    if resample != PIL_BICUBIC or not values.get("do_resize", True):
        raise ValueError(f"{source}: keras_clip implements bicubic resizing (resample=3) only; "
                         f"received do_resize={values.get('do_resize')}, resample={resample}.")
    size = values.get("size") or {}
    squash = "shortest_edge" not in size and not values.get("do_center_crop", True)
    defaults = PreprocessingConfig()
    return PreprocessingConfig(mean=tuple(values.get("image_mean", defaults.mean)),
                               std=tuple(values.get("image_std", defaults.std)),
                               resize_mode="squash" if squash else "shortest")
