"""Contrastive training: the `fit` loss, distribution, optimizer, precision, remat.

Names load on first use, so `keras_clip.training.script` (the CLI's options)
imports without a Keras backend.
"""

import importlib

_PUBLIC = {
    "ContrastiveTrainer": "keras_clip.models.contrastive_trainer",
    "LogitScaleConstraint": "keras_clip.models.contrastive_trainer",
    "gather_global_batch": "keras_clip.models.global_batch",
    "remat_scope": "keras_clip.models.remat",
    "make_strategy": "keras_clip.training.distribution",
    "build_optimizer": "keras_clip.training.optimizers",
    "no_decay_variable_paths": "keras_clip.training.optimizers",
}


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_clip.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
