"""The CLIP model: an image tower and a text tower in one embedding space."""

import weakref

import keras
import numpy as np

from keras_clip.config import CLIPConfig
from keras_clip.layers import ContrastiveLogits
from keras_clip.models import checkpoint_writers
from keras_clip.models.contrastive_trainer import ContrastiveTrainer
from keras_clip.models.lora import LoRAMixin, read_lora_file, write_lora_file
from keras_clip.models.preset_folder import (
    load_preset_weights,
    read_preset_config,
    read_preset_loss,
    write_preset_folder,
)
from keras_clip.models.remat import image_tower_class, remat_scope
from keras_clip.models.text_transformer import TextTransformerEncoder
from keras_clip.models.towers import validate_images, validate_token_ids


# TensorFlow: one XLA-compiled function per tower (compiled once per input shape).
# On CPU, Keras' predict path runs the TF graph without XLA; XLA fuses the
# LayerNorms, activations and attention softmax around the matmuls: 9-15% less
# CPU time per ViT-B/32 batch measured (see benchmarks/results).
_XLA_FUNCTIONS = weakref.WeakKeyDictionary()


def _xla_function(tower):
    fn = _XLA_FUNCTIONS.get(tower)
    if fn is None:
        import tensorflow as tf

        tower_ref = weakref.ref(tower)  # the cache must not keep the tower alive
        # bf16: XLA:CPU's bf16 dot skips oneDNN (AMX); TF's graph path uses it (3-4x,
        # benchmarks/results/amx/bf16_and_jax_train.md).
        xla = keras.backend.standardize_dtype(tower.outputs[0].dtype) != "bfloat16"
        fn = tf.function(lambda x: tower_ref()(x, training=False), jit_compile=xla)
        _XLA_FUNCTIONS[tower] = fn
    return fn


def _run_tower(tower, inputs):
    """Runs a tower compiled on concrete inputs (numpy in, numpy out), traced otherwise.

    TensorFlow: an XLA-compiled `tf.function`; JAX and torch: `predict_on_batch`
    (jitted on JAX).
    """
    if isinstance(inputs, (np.ndarray, list, tuple)):
        inputs = np.asarray(inputs)
        if keras.backend.backend() == "tensorflow":
            dtype = keras.backend.standardize_dtype(tower.inputs[0].dtype)
            return _xla_function(tower)(inputs.astype(dtype, copy=False)).numpy()
        return tower.predict_on_batch(inputs)
    return tower(inputs, training=False)


def build_image_encoder(config, dtype=None):
    """Builds the image tower that `config.vision` describes."""
    encoder = image_tower_class(config.vision)
    return encoder(config.vision, config.embed_dim, dtype=dtype, name="image_encoder")


@keras.saving.register_keras_serializable(package="keras_clip")
class CLIP(LoRAMixin, ContrastiveTrainer, keras.Model):
    """Contrastive language-image model.

    Called on `{"images": (B, S, S, 3) float32, "token_ids": (B, L) int32}` it
    returns `{"image_embeddings", "text_embeddings"}` (projected, not
    normalised) and `"logits_per_image"` `(B, B)`, the scaled cosine
    similarities (`"logits_per_text"` is its transpose).

    Args:
        config: a `CLIPConfig` or its dict (see `keras_clip/presets/configs`).
        dtype: optional dtype policy for every layer (e.g. `"bfloat16"`).
        remat: gradient checkpointing: `False` or `True` (each residual block
            is recomputed in the backward pass); see `keras_clip.models.remat.remat_scope`.
        lora: LoRA settings to restore (`enable_lora`'s arguments as a dict;
            saved models record them); see `keras_clip.models.lora`.
        loss: the training loss, `"softmax"` (CLIP's) or `"sigmoid"` (SigLIP's,
            with a learnable bias initialised to -10 and the temperature to
            ln 10); see `keras_clip.models.contrastive_trainer`.

    Training: `model.compile(optimizer=...)` then `model.fit(dataset)` with a
    dataset of `{"images", "token_ids"}` (see `keras_clip.training`).

    Example:
        >>> import keras_clip, numpy as np
        >>> model = keras_clip.from_preset("vit_b32", weights=None)
        >>> images = np.zeros((1, 224, 224, 3), "float32")
        >>> model.encode_image(images).shape
        (1, 512)
    """

    def __init__(self, config, dtype=None, remat=False, loss="softmax", lora=None, **kwargs):
        config = config if isinstance(config, CLIPConfig) else CLIPConfig.from_dict(config)
        with remat_scope(remat, config):
            image_encoder = build_image_encoder(config, dtype=dtype)
            text_encoder = TextTransformerEncoder(
                config.text, config.embed_dim, dtype=dtype, name="text_encoder"
            )
        size, length = config.vision.image_size, config.text.context_length
        images = keras.Input((size, size, 3), name="images")
        token_ids = keras.Input((length,), dtype="int32", name="token_ids")
        image_embeddings = image_encoder(images)
        text_embeddings = text_encoder(token_ids)
        logits = ContrastiveLogits(name="logits")(image_embeddings, text_embeddings)
        outputs = {
            "image_embeddings": image_embeddings,
            "text_embeddings": text_embeddings,
            "logits_per_image": logits,
        }
        kwargs.setdefault("name", config.name)
        super().__init__(
            inputs={"images": images, "token_ids": token_ids}, outputs=outputs, **kwargs
        )
        self.config = config
        self.dtype_override = dtype
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.contrastive_logits = self.get_layer("logits")
        self.remat = remat
        self._setup_contrastive_training(loss)
        self._restore_lora(lora)

    def _towers_changed(self):
        for tower in (self.image_encoder, self.text_encoder):  # retrace inference
            _XLA_FUNCTIONS.pop(tower, None)
            tower.predict_function = None

    @property
    def image_size(self):
        return self.config.vision.image_size

    @property
    def context_length(self):
        return self.config.text.context_length

    @property
    def logit_scale(self):
        """The current logit multiplier, `min(exp(t), 100)`."""
        return self.contrastive_logits.scale()

    def encode_image(self, images):
        """Preprocessed images `(B, S, S, 3)` -> projected embeddings `(B, embed_dim)`.

        Numpy inputs run through a compiled function and give numpy; backend
        tensors run eagerly (or inside the caller's trace) and give tensors.
        """
        validate_images(images, self.image_size)
        return _run_tower(self.image_encoder, images)

    def encode_text(self, token_ids):
        """Token ids `(B, L)` -> projected embeddings `(B, embed_dim)`."""
        validate_token_ids(token_ids, self.context_length, self.config.text.vocab_size)
        return _run_tower(self.text_encoder, token_ids)

    def save_to_preset(self, path):
        """Writes `config.json` and `model.weights.h5` to the folder `path`."""
        write_preset_folder(self, path)
        write_lora_file(self, path)

    def save_open_clip(self, path):
        """Writes an open_clip `.safetensors` file (OpenAI key names) of this model.

        Example:
            >>> model.save_open_clip("model.safetensors")  # doctest: +SKIP
            >>> # open_clip.create_model("ViT-B-32", pretrained="model.safetensors")
        """
        checkpoint_writers.save_open_clip(self, path)

    def save_transformers(self, folder):
        """Writes a transformers `CLIPModel` folder (ViT image towers only).

        Example:
            >>> model.save_transformers("clip_hf")  # doctest: +SKIP
            >>> # transformers.CLIPModel.from_pretrained("clip_hf")
        """
        checkpoint_writers.save_transformers(self, folder)

    @classmethod
    def from_preset_folder(cls, path, dtype=None, **kwargs):
        """The model saved in the preset folder `path` (see `save_to_preset`).

        Example:
            >>> model = CLIP.from_preset_folder("my_preset")  # doctest: +SKIP
        """
        kwargs.setdefault("loss", read_preset_loss(path))
        model = cls(read_preset_config(path), dtype=dtype, lora=read_lora_file(path), **kwargs)
        load_preset_weights(model, path)
        return model

    def get_config(self):
        return {
            "config": self.config.to_dict(),
            "dtype": self.dtype_override,
            "remat": self.remat,
            "lora": self.lora_config,
            "loss": self.contrastive_loss,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
