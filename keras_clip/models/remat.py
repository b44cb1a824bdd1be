"""Gradient checkpointing (rematerialisation) of CLIP's residual blocks.

Example:
    >>> from keras_clip.models.remat import remat_scope
    >>> with remat_scope(False, config=None):
    ...     pass
"""

import contextlib

import keras

from keras_clip.config import ResNetConfig
from keras_clip.models.modified_resnet import ModifiedResNetEncoder
from keras_clip.models.text_transformer import TextTransformerEncoder
from keras_clip.models.vision_transformer import VisionTransformerEncoder


def image_tower_class(vision):
    """The tower class of a vision config: ResNet or ViT."""
    return ModifiedResNetEncoder if isinstance(vision, ResNetConfig) else VisionTransformerEncoder


def remat_block_names(config):
    """Names of the layers rematerialised for `config`: every residual block of both towers."""
    names = set(TextTransformerEncoder.block_names(config.text))
    names.update(image_tower_class(config.vision).block_names(config.vision))
    return sorted(names)


def remat_scope(remat, config):
    """A `keras.RematScope` that recomputes each residual block in the backward pass.

    Layers created inside the scope keep the setting, so build the towers in
    it. Activations inside a block are freed after the forward pass and
    recomputed for the gradient: memory falls from O(layers x block
    activations) to O(layers x block inputs) for about one extra forward.

    Args:
        remat: `False`/`None` (no checkpointing), `True` or `"blocks"`
            (each residual block). (Keras' `"full"` mode, every layer, fails on
            the towers' slicing ops in Keras 3.15, so it is not offered.)
        config: the `CLIPConfig` whose block names to use.
    """
    if remat in (False, None):
        return contextlib.nullcontext()
    if remat in (True, "blocks"):
        return keras.RematScope(mode="list_of_layers", layer_names=remat_block_names(config))
    raise ValueError(f"`remat` must be False, True or 'blocks', received {remat!r}.")
