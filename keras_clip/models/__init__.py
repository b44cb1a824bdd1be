"""CLIP towers and the CLIP model."""

from keras_clip.models.clip import CLIP, build_image_encoder
from keras_clip.models.modified_resnet import ModifiedResNetEncoder
from keras_clip.models.text_transformer import TextTransformerEncoder
from keras_clip.models.vision_transformer import VisionTransformerEncoder
