"""Contrastive training: the `fit` loss, distribution, optimizer, precision, remat."""

from keras_clip.models.contrastive_trainer import ContrastiveTrainer, LogitScaleConstraint
from keras_clip.models.global_batch import gather_global_batch
from keras_clip.models.remat import remat_scope
from keras_clip.training.distribution import make_strategy
from keras_clip.training.optimizers import build_optimizer, no_decay_variable_paths
