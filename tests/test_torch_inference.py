"""The torch backend's no-grad inference path (BatchNorm folded, fused kernels) of the towers.

It must give the functional graph's numbers (and so open_clip's golden ones),
follow every weight change, and never run while training or under gradients.
"""

import os

import keras
import numpy as np
import pytest

import keras_clip

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="an inference path of the torch backend only"
)

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "parity")


@pytest.fixture
def used(monkeypatch):
    """Records, per call of the path, whether it produced the output (True) or declined."""
    from keras_clip.models import torch_inference

    calls, forward = [], torch_inference.forward

    def spy(tower, inputs):
        outputs = forward(tower, inputs)
        calls.append(outputs is not None)
        return outputs

    monkeypatch.setattr(torch_inference, "forward", spy)
    return calls


def graph_output(tower, inputs):
    """The functional graph's output: with gradients enabled the fast path declines."""
    return keras.ops.convert_to_numpy(tower(inputs, training=False)).copy()


def relative(actual, expected):
    return float(np.abs(np.asarray(actual) - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("case, checkpoint", [
    ("tiny_resnet", "tiny_resnet.bin"), ("tiny_vit", "tiny_vit.safetensors"),
])
def test_fast_path_equals_graph_and_open_clip(case, checkpoint, used):
    reference = np.load(os.path.join(GOLDEN, f"{case}.npz"))
    model = keras_clip.from_preset(os.path.join(GOLDEN, checkpoint))
    towers = [("text", model.text_encoder, model.encode_text, reference["token_ids"])]
    if case == "tiny_resnet":
        towers.append(("image", model.image_encoder, model.encode_image, reference["images"]))
    for name, tower, encode, inputs in towers:
        used.clear()
        fast = keras.ops.convert_to_numpy(encode(inputs))
        assert used == [True], f"{name}: the fast path was not taken"
        graph = graph_output(tower, inputs)
        assert used == [True, False], f"{name}: the fast path ran with gradients enabled"
        golden = reference[f"{name}_embeddings"]
        assert relative(fast, graph) <= 1e-5, name
        assert relative(fast, golden) <= 1e-5, name


def test_fast_path_is_not_used_in_training(used):
    import torch

    model = keras_clip.from_preset(os.path.join(GOLDEN, "tiny_resnet.bin"))
    images = np.load(os.path.join(GOLDEN, "tiny_resnet.npz"))["images"]
    with torch.no_grad():
        training = keras.ops.convert_to_numpy(model.image_encoder(images, training=True))
        inference = keras.ops.convert_to_numpy(model.image_encoder(images, training=False))
    assert used == [True]  # only the inference call: training never reaches it
    assert relative(training, inference) > 1e-2  # batch statistics, not the folded moving ones
    model.compile(optimizer="sgd")
    used.clear()
    model.fit({"images": images[:2], "token_ids": np.load(os.path.join(
        GOLDEN, "tiny_resnet.npz"))["token_ids"][:2]}, epochs=1, verbose=0)
    assert not any(used)


def test_fast_path_follows_weight_changes(used):
    model = keras_clip.from_preset(os.path.join(GOLDEN, "tiny_resnet.bin"))
    reference = np.load(os.path.join(GOLDEN, "tiny_resnet.npz"))
    rng = np.random.default_rng(0)
    for tower, encode, inputs in (
        (model.image_encoder, model.encode_image, reference["images"]),
        (model.text_encoder, model.encode_text, reference["token_ids"]),
    ):
        before = keras.ops.convert_to_numpy(encode(inputs))
        for variable in tower.weights:  # in place: assign keeps the same tensor
            variable.assign(variable.numpy() * rng.uniform(0.8, 1.2, variable.shape))
        after = keras.ops.convert_to_numpy(encode(inputs))
        assert relative(after, before) > 1e-3
        assert relative(after, graph_output(tower, inputs)) <= 1e-5
        tower.set_weights([w * 1.1 for w in tower.get_weights()])
        again = keras.ops.convert_to_numpy(encode(inputs))
        assert relative(again, graph_output(tower, inputs)) <= 1e-5
    assert used == [True, True, False, True, False] * 2  # encode: fast; graph_output: not


def test_lora_and_bfloat16_towers_run_the_graph(used):
    model = keras_clip.from_preset(os.path.join(GOLDEN, "tiny_resnet.bin"))
    token_ids = np.load(os.path.join(GOLDEN, "tiny_resnet.npz"))["token_ids"]
    model.enable_lora(2, towers="text")
    for variable in model.text_encoder.weights:
        if "lora_kernel_b" in variable.path:  # zero at first: make the adapter matter
            variable.assign(np.full(variable.shape, 0.05, "float32"))
    used.clear()
    adapted = keras.ops.convert_to_numpy(model.encode_text(token_ids))
    assert used == [False]
    assert relative(adapted, graph_output(model.text_encoder, token_ids)) <= 1e-6

    tower = keras_clip.models.TextTransformerEncoder(
        {"width": 64, "layers": 1}, embed_dim=32, dtype="bfloat16")
    used.clear()
    tower.predict_on_batch(np.ones((1, 77), "int32"))
    assert used == [False]
