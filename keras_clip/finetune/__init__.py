"""Fine-tuning that keeps zero-shot: locked towers, LoRA, zero-shot heads, FLYP and WiSE-FT.

- `lock(model, image=True, text=False, unlocked_groups=0)`: LiT's locked tower.
- `model.enable_lora(rank)` / `model.merge_lora()`: low-rank adapters (methods of
  `keras_clip.CLIP`, in `keras_clip.models.lora`).
- `build_classifier(model, class_names)` / `ZeroShotHead`: a classifier whose head
  starts as the zero-shot classifier.
- `FLYPBatches` / `flyp_batches`: contrastive fine-tuning on class prompts.
- `wise_ft(zero_shot, fine_tuned, alpha)` / `wise_ft_sweep`: weight interpolation.

Example:
    >>> from keras_clip import finetune
    >>> zero_shot = keras_clip.from_preset("vit_b32")  # doctest: +SKIP
    >>> model = keras_clip.from_preset("vit_b32")  # doctest: +SKIP
    >>> classifier = finetune.build_classifier(model, names, templates="simple")  # doctest: +SKIP
    >>> classifier.compile("adamw", keras.losses.SparseCategoricalCrossentropy(True))  # doctest: +SKIP
    >>> classifier.fit(images, labels, epochs=3)  # doctest: +SKIP
    >>> robust = finetune.wise_ft(zero_shot, model, alpha=0.5)  # doctest: +SKIP
"""

from keras_clip.finetune.flyp import FLYPBatches, flyp_batches
from keras_clip.finetune.head import ZeroShotHead, build_classifier
from keras_clip.finetune.locking import lock, lock_tower, trainable_parameter_count
from keras_clip.finetune.wise_ft import matched_weights, wise_ft, wise_ft_sweep

__all__ = ["FLYPBatches", "ZeroShotHead", "build_classifier", "flyp_batches", "lock",
           "lock_tower", "matched_weights", "trainable_parameter_count", "wise_ft",
           "wise_ft_sweep"]
