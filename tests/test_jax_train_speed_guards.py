"""Properties of the compiled JAX training step that keep it fast (no timings).

`benchmarks/results/amx/jax_train_profile.md` (section 3) measured the NaN-skip
written as a per-tensor `jnp.where` select instead of one `lax.cond`: the
ViT-B/32-width step then had 144 copies instead of 69 and 107 MiB more
temporary memory. This test fails if the step loses its conditional.
"""

import keras
import numpy as np
import pytest

from tests.conftest import tiny_config

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="a property of the XLA-compiled JAX step")


def test_nan_skip_compiles_to_one_conditional_not_a_select_per_weight():
    import jax

    from keras_clip.models import CLIP

    keras.utils.set_random_seed(0)
    model = CLIP(tiny_config("vit"))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    rng = np.random.default_rng(0)
    batch = {"images": rng.normal(size=(2, 32, 32, 3)).astype("float32"),
             "token_ids": rng.integers(1, 999, (2, 77)).astype("int32")}
    model.train_on_batch(batch)  # builds the optimizer's state
    state = tuple([v.value for v in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
        model.metrics_variables))
    # A new lambda: `jax.jit(model.train_step)` would reuse train_on_batch's trace.
    step = jax.jit(lambda state, data: model.train_step(state, data), donate_argnums=0)
    hlo = step.lower(state, (batch, None, None)).compile().as_text()
    assert hlo.count(" conditional(") == 1
