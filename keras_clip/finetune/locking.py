"""Locked towers (LiT, Zhai et al. 2022): freeze a tower, optionally leaving its last blocks.

`lock(model, image=True)` freezes the image tower; `unlocked_groups=k` leaves
its last `k` residual blocks, its final LayerNorm and its projection (the
ResNet's attention pool) trainable, as open_clip's `lock_image_tower` does with
its groups. A locked BatchNormalization layer runs in inference mode, so a
locked ResNet keeps its statistics (`freeze_batch_norm=True`); with `False`
its statistics keep updating while its scale and offset stay frozen.

Example:
    >>> from keras_clip import finetune
    >>> finetune.lock(model, image=True, text=False)  # doctest: +SKIP
    >>> model.compile(optimizer="adamw"); model.fit(data)  # doctest: +SKIP
"""

import keras
import numpy as np

TOWERS = ("image", "text")
# The layers after the residual blocks, per tower class: unlocked with the last blocks.
_HEADS = {"VisionTransformerEncoder": ("ln_post", "proj"),
          "ModifiedResNetEncoder": ("attnpool",),
          "TextTransformerEncoder": ("ln_final", "text_projection")}


def _tower(model, name):
    if name not in TOWERS:
        raise ValueError(f"Unknown tower {name!r}; expected one of {TOWERS}.")
    return getattr(model, f"{name}_encoder")


def lock_tower(model, tower, unlocked_groups=0, freeze_batch_norm=True):
    """Freezes one tower (`"image"` or `"text"`) of `model`; see `lock`.

    Example:
        >>> lock_tower(model, "text", unlocked_groups=1)  # doctest: +SKIP
    """
    encoder = _tower(model, tower)
    blocks = list(type(encoder).block_names(encoder.config))
    if (not isinstance(unlocked_groups, (int, np.integer)) or isinstance(unlocked_groups, bool)
            or not 0 <= unlocked_groups <= len(blocks)):
        raise ValueError(f"`unlocked_groups` must be an int in [0, {len(blocks)}] (the {tower} "
                         f"tower has {len(blocks)} residual blocks); received {unlocked_groups!r}.")
    for layer in encoder.layers:
        layer.trainable = False
    if unlocked_groups:
        for name in blocks[len(blocks) - unlocked_groups:] + list(_HEADS[type(encoder).__name__]):
            encoder.get_layer(name).trainable = True
    if not freeze_batch_norm:
        for layer in encoder._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable:
                layer.trainable = True  # statistics update in training mode...
                for variable in (layer.gamma, layer.beta):
                    variable.trainable = False  # ...while scale and offset stay frozen
    return model


def lock(model, image=True, text=False, unlocked_groups=0, freeze_batch_norm=True):
    """Freezes the image and/or text tower of a `keras_clip.CLIP`; returns the model.

    Args:
        model: a `keras_clip.CLIP`.
        image, text: which towers to lock (`lock(model)` is LiT's locked image tower).
        unlocked_groups: leave the last `unlocked_groups` residual blocks of each
            locked tower, its final LayerNorm and its projection trainable.
        freeze_batch_norm: keep a locked ResNet's BatchNorm statistics fixed.

    Compile after locking (the trainable weights changed).

    Example:
        >>> model = finetune.lock(keras_clip.CLIP(config), image=True)  # doctest: +SKIP
        >>> model.compile(optimizer="adamw")  # doctest: +SKIP
    """
    for name, value in (("image", image), ("text", text)):
        if not isinstance(value, bool):
            raise ValueError(  # noqa: TRY004 (bad input is a ValueError here)
                f"`{name}` must be True or False (lock that tower or not); received {value!r}.")
    if not (image or text):
        raise ValueError("lock() with image=False and text=False locks nothing; "
                         "pass image=True and/or text=True.")
    for name in [n for n, value in (("image", image), ("text", text)) if value]:
        lock_tower(model, name, unlocked_groups, freeze_batch_norm)
    return model


def trainable_parameter_count(model):
    """The number of scalars `model.fit` would update (trainable weights).

    Example:
        >>> trainable_parameter_count(model) <= model.count_params()  # doctest: +SKIP
        True
    """
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))
