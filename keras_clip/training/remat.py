"""Gradient checkpointing (rematerialisation) of CLIP's residual blocks.

Example:
    >>> from keras_clip.training.remat import remat_scope
    >>> with remat_scope(False, config=None):
    ...     pass
"""

import contextlib

import keras

from keras_clip.config import ResNetConfig


def remat_block_names(config):
    """Names of the layers rematerialised for `config`: every residual block of both towers."""
    names = {f"resblocks_{i}" for i in range(config.text.layers)}
    vision = config.vision
    if isinstance(vision, ResNetConfig):
        for stage, depth in enumerate(vision.layers):
            names.update(f"layer{stage + 1}_{block}" for block in range(depth))
    else:
        names.update(f"resblocks_{i}" for i in range(vision.layers))
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
