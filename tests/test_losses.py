"""The contrastive loss against a numpy reference; local (sharded) form == global form."""

import numpy as np
import pytest
from keras import ops

from keras_clip.losses import (
    clip_loss,
    clip_loss_from_logits,
    in_batch_accuracy,
    local_contrastive_logits,
    local_contrastive_loss,
)


def _reference(images, texts, scale):
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    texts = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    logits = scale * images @ texts.T

    def ce(rows):
        rows = rows - rows.max(axis=1, keepdims=True)
        log_probs = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        return -np.mean(np.diag(log_probs))

    return 0.5 * (ce(logits) + ce(logits.T))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 16)).astype("float32"), rng.normal(size=(6, 16)).astype("float32")


def test_clip_loss_matches_reference(batch):
    images, texts = batch
    value = float(ops.convert_to_numpy(clip_loss(images, texts, 14.3)))
    assert value == pytest.approx(_reference(images, texts, 14.3), rel=1e-5)


def test_loss_is_float32_for_half_inputs(batch):
    images, texts = batch
    loss = clip_loss(images.astype("float16"), texts.astype("float16"), 10.0)
    assert "float32" in str(loss.dtype)
    assert float(ops.convert_to_numpy(loss)) == pytest.approx(
        _reference(images, texts, 10.0), rel=1e-2
    )


def test_square_logits_form(batch):
    images, texts = batch
    n_i = images / np.linalg.norm(images, axis=1, keepdims=True)
    n_t = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    value = float(ops.convert_to_numpy(clip_loss_from_logits(7.0 * n_i @ n_t.T)))
    assert value == pytest.approx(_reference(images, texts, 7.0), rel=1e-5)


@pytest.mark.parametrize("shards", [2, 3])
def test_local_shards_sum_to_global_loss(batch, shards):
    images, texts = batch
    size = len(images) // shards
    total = 0.0
    for shard in range(shards):
        rows = slice(shard * size, (shard + 1) * size)
        i2t, t2i = local_contrastive_logits(images[rows], texts[rows], images, texts, 20.0)
        assert tuple(i2t.shape) == (size, len(images))  # b x B, not B x B
        per_pair = local_contrastive_loss(i2t, t2i, offset=shard * size)
        total += float(ops.convert_to_numpy(ops.sum(per_pair)))
    assert total / len(images) == pytest.approx(_reference(images, texts, 20.0), rel=1e-5)


def test_accuracy_with_offset():
    logits = np.array([[0, 0, 5, 0], [0, 0, 0, 5]], "float32")  # rows 2, 3 of 4
    assert float(ops.convert_to_numpy(in_batch_accuracy(logits, offset=2))) == 1.0
    assert float(ops.convert_to_numpy(in_batch_accuracy(logits, offset=0))) == 0.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="same width"):
        clip_loss(np.ones((2, 3), "float32"), np.ones((2, 4), "float32"), 1.0)
    with pytest.raises(ValueError, match="as many images as texts"):
        clip_loss(np.ones((2, 3), "float32"), np.ones((3, 3), "float32"), 1.0)
    with pytest.raises(ValueError, match="square"):
        clip_loss_from_logits(np.ones((2, 3), "float32"))
