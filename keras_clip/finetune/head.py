"""A classifier head initialised from the text embeddings of class prompts (zero-shot init).

`build_classifier(model, class_names)` returns a Keras model, images -> logits,
made of the CLIP image tower (shared, so training it fine-tunes the CLIP) and a
`ZeroShotHead` whose kernel starts as `logit_scale * class_embeddings.T`: before
any training it gives `ZeroShotClassifier`'s logits (LP-FT, Kumar et al. 2022;
the zero-shot head of WiSE-FT, Wortsman et al. 2022).

Example:
    >>> classifier = build_classifier(model, ["cat", "dog"], templates="simple")  # doctest: +SKIP
    >>> classifier.compile(optimizer="adamw",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # doctest: +SKIP
    >>> classifier.fit(images, labels)  # doctest: +SKIP
"""

import keras
import numpy as np
from keras import ops

from keras_clip.evaluation.features import logit_scale_of
from keras_clip.evaluation.zero_shot import check_class_names, zero_shot_weights
from keras_clip.layers import l2_normalize


@keras.saving.register_keras_serializable(package="keras_clip")
class ZeroShotHead(keras.layers.Layer):
    """Logits `normalize(x) @ kernel` for image embeddings `x` `(B, D)` -> `(B, C)`.

    Args:
        class_names: the class names, in label order (kept for users and saving).

    Example:
        >>> head = ZeroShotHead(["cat", "dog"])
        >>> head(np.ones((1, 4), "float32")).shape
        (1, 2)
    """

    def __init__(self, class_names, **kwargs):
        super().__init__(**kwargs)
        self.class_names = check_class_names(class_names)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], len(self.class_names)),
                                      initializer="zeros", name="kernel")

    def call(self, embeddings):
        return ops.matmul(l2_normalize(embeddings), ops.cast(self.kernel, "float32"))  # (B, C)

    def set_class_embeddings(self, class_embeddings, logit_scale):
        """Sets the kernel to `logit_scale * class_embeddings.T` (`class_embeddings` `(C, D)`)."""
        class_embeddings = np.asarray(class_embeddings, "float32")
        expected = (self.kernel.shape[1], self.kernel.shape[0])
        if class_embeddings.shape != expected:
            raise ValueError(f"Expected class embeddings of shape {expected} (classes, "
                             f"embed_dim); received {class_embeddings.shape}.")
        self.kernel.assign(np.float32(logit_scale) * class_embeddings.T)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.class_names))

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": self.class_names})
        return config


def build_classifier(model, class_names, templates="openai_imagenet", tokenizer=None):
    """A Keras classifier `images (B, S, S, 3) -> logits (B, C)` with a zero-shot head.

    Args:
        model: a `keras_clip.CLIP`; its `image_encoder` is shared, not copied.
        class_names: the class names, in label order.
        templates: prompt templates (a set name, one template or a list; see
            `keras_clip.evaluation.resolve_templates`).
        tokenizer: callable list of str -> token ids; default the model's.

    Example:
        >>> classifier = build_classifier(model, ["red circle", "blue star"], "shapes")  # doctest: +SKIP
        >>> classifier.predict(images).argmax(1)  # == ZeroShotClassifier(...).predict(images)
    """
    class_names = check_class_names(class_names)
    embeddings = zero_shot_weights(model, class_names, templates, tokenizer)  # (C, D)
    size = model.image_size
    images = keras.Input((size, size, 3), name="images")
    head = ZeroShotHead(class_names, name="zero_shot_head")
    logits = head(model.image_encoder(images))
    head.set_class_embeddings(embeddings, logit_scale_of(model))
    return keras.Model(images, logits, name=f"{model.name}_classifier")
