"""Contrastive training: the `fit` loss, distribution, optimizer, precision, remat."""

from keras_clip.training.contrastive import ContrastiveTrainer, LogitScaleConstraint
from keras_clip.training.distribution import gather_global_batch, make_strategy
from keras_clip.training.optimizers import build_optimizer, no_decay_variable_paths
from keras_clip.models.remat import remat_scope
