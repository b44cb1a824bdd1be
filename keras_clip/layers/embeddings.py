"""Token, class-token and positional embeddings of the two CLIP towers."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_clip")
class ClassTokenAndPositionEmbedding(layers.Layer):
    """Prepends a learned class token to patch tokens and adds positions.

    Weights `class_embedding` `(D,)` and `positional_embedding` `(N + 1, D)`
    match OpenAI's ViT.

    Args:
        num_patches: number of patch tokens `N`.

    Example:
        >>> import numpy as np
        >>> layer = ClassTokenAndPositionEmbedding(num_patches=4)
        >>> layer(np.zeros((2, 4, 8), "float32")).shape
        (2, 5, 8)
    """

    def __init__(self, num_patches, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_patches, int) or num_patches <= 0:
            raise ValueError(f"`num_patches` must be a positive integer, received {num_patches!r}.")
        self.num_patches = num_patches

    def build(self, input_shape):
        width = input_shape[-1]
        scale = width**-0.5
        init = keras.initializers.RandomNormal(stddev=scale)
        self.class_embedding = self.add_weight(
            shape=(width,), initializer=init, name="class_embedding"
        )
        self.positional_embedding = self.add_weight(
            shape=(self.num_patches + 1, width), initializer=init, name="positional_embedding"
        )

    def call(self, patches):
        batch = ops.shape(patches)[0]
        class_token = ops.cast(self.class_embedding, patches.dtype)
        class_token = ops.broadcast_to(class_token[None, None, :], (batch, 1, patches.shape[-1]))
        tokens = ops.concatenate([class_token, patches], axis=1)  # (B, N + 1, D)
        return tokens + ops.cast(self.positional_embedding, patches.dtype)[None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_patches + 1, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_patches": self.num_patches})
        return config


@keras.saving.register_keras_serializable(package="keras_clip")
class TokenAndPositionEmbedding(layers.Layer):
    """Token embedding plus learned absolute positions (the text tower's input).

    Args:
        vocab_size: number of token ids.
        context_length: sequence length `L`.
        width: embedding width `D`.

    Example:
        >>> import numpy as np
        >>> layer = TokenAndPositionEmbedding(100, 6, 8)
        >>> layer(np.zeros((2, 6), "int32")).shape
        (2, 6, 8)
    """

    def __init__(self, vocab_size, context_length, width, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width

    def build(self, input_shape):
        self.token_embedding = self.add_weight(
            shape=(self.vocab_size, self.width),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_embedding",
        )
        self.positional_embedding = self.add_weight(
            shape=(self.context_length, self.width),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="positional_embedding",
        )

    def call(self, token_ids):
        tokens = ops.take(self.token_embedding, ops.cast(token_ids, "int32"), axis=0)
        embedded = tokens + self.positional_embedding[None]  # (B, L, D)
        return ops.cast(embedded, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.width,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "context_length": self.context_length,
                "width": self.width,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_clip")
class EndOfTextPooling(layers.Layer):
    """Picks each row's feature at its end-of-text token (the highest id).

    Written as argmax -> one-hot -> einsum rather than a gather, so that the
    batch axis stays dynamic when exported from every backend.

    Example:
        >>> import numpy as np
        >>> hidden = np.arange(12, dtype="float32").reshape(1, 3, 4)
        >>> EndOfTextPooling()(hidden, np.array([[5, 9, 0]])).tolist()
        [[4.0, 5.0, 6.0, 7.0]]
    """

    def call(self, hidden, token_ids):
        length = ops.shape(hidden)[1]
        position = ops.argmax(ops.cast(token_ids, "int32"), axis=-1)  # (B,)
        selector = ops.one_hot(position, length, dtype=hidden.dtype)  # (B, L)
        return ops.einsum("bl,bld->bd", selector, hidden)

    def compute_output_shape(self, hidden_shape, token_ids_shape=None):
        return (hidden_shape[0], hidden_shape[-1])
