"""Keras layers that make up the CLIP towers."""

from keras_clip.layers.activations import gelu, get_activation, quick_gelu
from keras_clip.layers.attention import MultiHeadSelfAttention
from keras_clip.layers.attention_pool import AttentionPool2d
from keras_clip.layers.bottleneck import Bottleneck
from keras_clip.layers.embeddings import (
    ClassTokenAndPositionEmbedding,
    EndOfTextPooling,
    TokenAndPositionEmbedding,
)
from keras_clip.layers.logit_scale import ContrastiveLogits, l2_normalize
from keras_clip.layers.patch_embedding import PatchEmbedding
from keras_clip.layers.residual_block import ResidualAttentionBlock
