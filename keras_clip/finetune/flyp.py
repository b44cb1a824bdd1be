"""FLYP (Goyal et al. 2022, "Finetune like you pretrain"): contrastive fine-tuning on class prompts.

Each labelled image is paired with a prompt of its class (a template drawn at
random per sample) and the model trains with its own CLIP loss through
`model.fit`: the loss is unchanged, the data makes the mode. Same-class pairs in
one batch would be false negatives, so `FLYPBatches` builds every batch from
distinct classes while `batch_size` does not exceed the number of classes;
beyond that, duplicates are negatives as in FLYP's reference code (its
ImageNet-size class counts rarely repeat a class in a batch).

Example:
    >>> batches = FLYPBatches(images, labels, class_names, "shapes", batch_size=16)  # doctest: +SKIP
    >>> model.compile(optimizer="adamw"); model.fit(batches, epochs=3)  # doctest: +SKIP
"""

import keras
import numpy as np

from keras_clip.evaluation.features import default_tokenizer
from keras_clip.evaluation.templates import resolve_templates
from keras_clip.evaluation.zero_shot import check_class_names


class FLYPBatches(keras.utils.PyDataset):
    """`{"images", "token_ids"}` batches of labelled images and prompts of their classes.

    Args:
        images: preprocessed images `(N, S, S, 3)` float32.
        labels: int labels `(N,)` indexing `class_names`.
        class_names: the class names, in label order.
        templates: prompt templates (a set name, one template or a list).
        batch_size: pairs per batch; batches hold distinct classes while
            `batch_size <= len(class_names)`.
        tokenizer: callable list of str -> token ids; default `CLIPTokenizer`.
        context_length: the tokenizer's context length when `tokenizer` is None.
        seed: the shuffling seed (epoch `e` uses `(seed, e)`).

    Example:
        >>> batches = FLYPBatches(images, labels, ["cat", "dog"], "a photo of a {}.", 2)  # doctest: +SKIP
        >>> batches[0]["token_ids"].shape  # (2, 77)
    """

    def __init__(self, images, labels, class_names, templates, batch_size, tokenizer=None,
                 context_length=77, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.class_names = check_class_names(class_names)
        self.images = np.asarray(images, "float32")
        self.labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if self.images.ndim != 4 or len(self.images) != len(self.labels):
            raise ValueError(f"Expected images (N, S, S, 3) and N labels; received images of "
                             f"shape {self.images.shape} and {len(self.labels)} labels.")
        if len(self.labels) and not 0 <= self.labels.min() <= self.labels.max() < len(
                self.class_names):
            raise ValueError(f"labels must lie in [0, {len(self.class_names)}) (one per class "
                             f"name); received values from {self.labels.min()} to "
                             f"{self.labels.max()}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not (
                1 <= batch_size <= len(self.labels)):
            raise ValueError(f"`batch_size` must be an int in [1, {len(self.labels)}] (the "
                             f"number of images); received {batch_size!r}.")
        self.batch_size = int(batch_size)
        self.templates = resolve_templates(templates)
        if tokenizer is None:
            from keras_clip.tokenizer import CLIPTokenizer

            tokenizer = CLIPTokenizer(context_length=context_length)
        texts = [t.format(c) for c in self.class_names for t in self.templates]  # class-major
        tokens = np.asarray(tokenizer(texts), "int32")
        self.tokens = tokens.reshape(len(self.class_names), len(self.templates), -1)  # (C, T, L)
        self.seed = int(seed)
        self.epoch = 0
        self._plan = self._epoch_plan()

    def __len__(self):
        return len(self.labels) // self.batch_size

    def _epoch_plan(self):
        """Sample indices `(batches, batch_size)` and template choices of this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        queues = [list(rng.permutation(np.flatnonzero(self.labels == c)))
                  for c in range(len(self.class_names))]
        batches = []
        for _ in range(len(self)):
            counts = np.array([len(q) for q in queues], np.float64)
            distinct = min(self.batch_size, int(np.count_nonzero(counts)))
            classes = rng.choice(len(queues), distinct, replace=False, p=counts / counts.sum())
            batch = [queues[c].pop() for c in classes]
            batch += list(rng.choice(len(self.labels), self.batch_size - distinct))
            batches.append(batch)
        indices = np.array(batches, np.int64).reshape(len(self), self.batch_size)
        return indices, rng.integers(len(self.templates), size=indices.shape)

    def __getitem__(self, index):
        indices, templates = self._plan
        rows = indices[index]
        return {"images": self.images[rows],
                "token_ids": self.tokens[self.labels[rows], templates[index]]}

    def on_epoch_end(self):
        self.epoch += 1
        self._plan = self._epoch_plan()


def flyp_batches(model, images, labels, class_names, templates="openai_imagenet",
                 batch_size=32, seed=0):
    """`FLYPBatches` with `model`'s tokenizer (its context length).

    Example:
        >>> model.fit(flyp_batches(model, images, labels, names, "shapes", 16))  # doctest: +SKIP
    """
    return FLYPBatches(images, labels, class_names, templates, batch_size,
                       tokenizer=default_tokenizer(model), seed=seed)
