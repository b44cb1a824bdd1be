"""CLIP image preprocessing: eager (PIL, exact), `tf.data` graph and Keras layer.

The reference is open_clip's `image_transform(size, is_train=False)`: PIL
bicubic resize of the shortest side, center crop, `/ 255`, CLIP mean/std;
or, as open_clip's pretrained configs give some weights (`resize_mode`,
`mean`, `std`), a "squash" resize straight to S x S and other mean/std:
`ImagePreprocessor.for_model(model)` takes them from the model's config.
The PIL-matching rules (geometry, pass order, rounding, alpha, pixel values)
live once in `rules`; each path uses them:

- `eager`: numpy / PIL input, resized by PIL itself (max abs difference 0).
- `graph`: `preprocess_tf` / `center_crop_tf` / `resized_crop_tf` for `tf.data`, and
  `random_crop`: `random_resized_crop_tf`, open_clip's training transform
  (within one grey level of PIL; mean abs difference ~5e-6).
- `layer`: `ImagePreprocessor`, which routes each input to its path and has
  a `keras.ops` path for backend tensors inside a model.

Pixel values, the same rule on every path (`pixel_rule`): uint8 is 8-bit;
uint16 is scaled to 8 bits as `round(value / 257)`; other integer dtypes must
hold [0, 255]; float must be finite and in [0, 1]. Anything else is a
ValueError naming what was received (a failed `tf.debugging.Assert` in a tf
graph; a runtime error carrying the ValueError under `jax.jit`).

Example:
    >>> import numpy as np
    >>> from keras_clip.preprocessing import ImagePreprocessor
    >>> ImagePreprocessor(224)(np.zeros((300, 400, 3), np.uint8)).shape
    (1, 224, 224, 3)
"""

from keras_clip.preprocessing.eager import preprocess_numpy
from keras_clip.preprocessing.graph import (
    center_crop_tf,
    preprocess_tf,
    resized_crop_tf,
)
from keras_clip.preprocessing.layer import ImagePreprocessor
from keras_clip.preprocessing.random_crop import (
    random_crop_box_tf,
    random_resized_crop_tf,
)
from keras_clip.preprocessing.rules import (
    MEAN,
    STD,
    center_offset,
    horizontal_pass_first,
    pillow_picks_pass_order,
    pixel_rule,
    resized_shape,
)

__all__ = [
    "MEAN",
    "STD",
    "ImagePreprocessor",
    "center_crop_tf",
    "center_offset",
    "horizontal_pass_first",
    "pillow_picks_pass_order",
    "pixel_rule",
    "preprocess_numpy",
    "preprocess_tf",
    "random_crop_box_tf",
    "random_resized_crop_tf",
    "resized_crop_tf",
    "resized_shape",
]
