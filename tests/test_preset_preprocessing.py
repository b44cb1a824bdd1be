"""Per-preset image preprocessing (mean, std, resize_mode) against open_clip.

tests/golden/preset_preprocessing.npz comes from
scripts/make_preset_preprocessing_golden.py: open_clip's eval transform built
from its pretrained config for `vit_h14_dfn5b` (resize_mode "squash", OpenAI
mean/std) and `vit_l14_laion2b` (shortest side, mean = std = 0.5), on the
tests/preprocessing_cases.py inputs, plus every preset's pretrained values.
"""

import json
import os
import pathlib
import sys

import keras
import numpy as np
import pytest

import keras_clip
from keras_clip.config import CLIPConfig, PreprocessingConfig
from keras_clip.export.manifest import model_values
from keras_clip.export.preprocessor_graph import (
    preprocessor_model,
    run_preprocessor_graph,
)
from keras_clip.preprocessing import (
    ImagePreprocessor,
    pillow_picks_pass_order,
    preprocess_tf,
)
from keras_clip.presets import list_presets, preset_config
from tests.conftest import tiny_config

sys.path.insert(0, os.path.dirname(__file__))
import preprocessing_cases as cases  # noqa: E402

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "preset_preprocessing.npz"))
PRESETS = ("vit_h14_dfn5b", "vit_l14_laion2b")
CASES = sorted({key.split("_", 1)[1] for key in GOLDEN.files if key.startswith("sha_")})
EAGER_MAX = 1e-5  # PIL itself resizes: float32 rounding only
# Graph, keras.ops and ONNX paths: one grey level off where float error meets a
# rounding tie, as in test_preprocessing (whose measured worst mean is 5e-6).
GRAPH_MEAN = 1e-5  # measured worst: 4.3e-6 (tf.data, squash), 2.7e-6 (ONNX)
GRAPH_LEVELS = 2.01  # grey levels anywhere, except semi-transparent pixels (10; see there)
ALPHA_LEVELS = 10.01


def expected(preset, case):
    mean, std = (GOLDEN[f"{key}_{preset}"].astype(np.float32) for key in ("mean", "std"))
    grid = GOLDEN[f"u8_{preset}_{case}"].astype(np.float32)
    return (grid / np.float32(255.0) - mean) / std


def load(case):
    image = cases.load(case)
    if cases.digest(image) != str(GOLDEN[f"sha_{case}"]):
        pytest.fail(f"input {case} differs from the one the golden file was made from")
    if not pillow_picks_pass_order():
        pytest.skip("golden made with Pillow 13, whose pass order may differ")
    return image


def check_graph_path(out, preset, case):
    diff = np.abs(np.asarray(out, np.float32).reshape(expected(preset, case).shape)
                  - expected(preset, case))
    levels = ALPHA_LEVELS if "alpha" in case or "rgba" in case else GRAPH_LEVELS
    worst = levels / 255 / float(GOLDEN[f"std_{preset}"].min())
    assert diff.mean() <= GRAPH_MEAN and diff.max() <= worst, (diff.mean(), diff.max())


def test_every_preset_config_holds_open_clips_pretrained_values():
    facts = json.loads(str(GOLDEN["pretrained_cfgs"]))
    assert sorted(facts) == list_presets()
    for name, fact in facts.items():
        pre = preset_config(name).preprocessing
        assert pre.resize_mode == fact["resize_mode"], name
        assert pre.interpolation == fact["interpolation"], name
        np.testing.assert_allclose(pre.mean, fact["mean"], rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(pre.std, fact["std"], rtol=0, atol=1e-9, err_msg=name)
    assert preset_config("vit_h14_378_dfn5b").preprocessing.resize_mode == "squash"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("preset", PRESETS)
def test_eager_matches_open_clip(preset, case):
    image = load(case)
    config = preset_config(preset)
    size = cases.CASES[case][1]
    pre = ImagePreprocessor(size, mean=config.preprocessing.mean, std=config.preprocessing.std,
                            resize_mode=config.preprocessing.resize_mode)
    out = pre(image)
    assert out.shape == (1, size, size, 3)
    assert np.abs(out[0] - expected(preset, case)).max() <= EAGER_MAX


@pytest.mark.parametrize("preset", PRESETS)
def test_tf_data_keras_ops_onnx_and_clip_edge_match_open_clip(preset):
    tf = pytest.importorskip("tensorflow")
    from clip_edge.preprocess import preprocess as edge_preprocess

    pre = preset_config(preset).preprocessing
    for case in ("coffee_400x600", "chelsea_alpha_gradient", "camera_gray_2d"):
        image = load(case)
        image = image[:, :, None] if image.ndim == 2 else image
        size = cases.CASES[case][1]
        layer = ImagePreprocessor(size, pre.mean, pre.std, pre.resize_mode)
        dataset = tf.data.Dataset.from_tensors(tf.constant(image)).map(layer)
        check_graph_path(next(iter(dataset)).numpy(), preset, case)
        inputs = keras.Input(image.shape, dtype="uint8")
        model = keras.Model(inputs, layer(inputs))
        check_graph_path(keras.ops.convert_to_numpy(model(image[None])), preset, case)
        graph = preprocessor_model(size, pre.mean, pre.std, pre.resize_mode)
        check_graph_path(run_preprocessor_graph(_session(graph), image), preset, case)
        edge = edge_preprocess([image], size, pre.mean, pre.std, pre.resize_mode)
        assert np.abs(edge[0] - expected(preset, case)).max() <= EAGER_MAX


def _session(model):
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def test_squash_differs_from_shortest():
    """The golden's squash output is not the center crop (a test of the golden's meaning)."""
    image = load("coffee_400x600")
    shortest = ImagePreprocessor(224)(image)[0]
    assert np.abs(shortest - expected("vit_h14_dfn5b", "coffee_400x600")).mean() > 0.1


def test_for_model_and_config_round_trip(tmp_path):
    config = tiny_config("vit")
    values = config.to_dict()
    values["preprocessing"] = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize_mode": "squash"}
    config = CLIPConfig.from_dict(values)
    assert CLIPConfig.from_dict(config.to_dict()) == config
    model = keras_clip.CLIP(config)
    pre = ImagePreprocessor.for_model(model)
    assert (pre.image_size, pre.mean, pre.std, pre.resize_mode) == (
        config.vision.image_size, (0.5,) * 3, (0.25,) * 3, "squash")
    assert ImagePreprocessor.for_model(config).resize_mode == "squash"
    model.save_to_preset(str(tmp_path / "preset"))
    assert keras_clip.from_preset(str(tmp_path / "preset")).config.preprocessing == \
        config.preprocessing
    clone = ImagePreprocessor.from_config(pre.get_config())
    assert (clone.mean, clone.std, clone.resize_mode) == (pre.mean, pre.std, pre.resize_mode)
    image = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(clone(image), pre(image))
    with pytest.raises(ValueError, match="for_model expects a keras_clip CLIP model"):
        ImagePreprocessor.for_model(keras.layers.Dense(2))


def test_config_without_preprocessing_loads_openai_values():
    values = preset_config("vit_b32").to_dict()
    del values["preprocessing"]
    assert CLIPConfig.from_dict(values).preprocessing == PreprocessingConfig()
    assert PreprocessingConfig().mean == keras_clip.preprocessing.MEAN


def test_manifest_records_the_models_preprocessing():
    values = tiny_config("vit").to_dict()
    values["preprocessing"] = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}
    manifest = model_values(keras_clip.CLIP(CLIPConfig.from_dict(values)))
    image = manifest["image"]
    assert (image["mean"], image["std"], image["resize_mode"]) == ([0.5] * 3, [0.5] * 3, "squash")
    assert "no crop" in image["resize"]


def test_clip_edge_manifest_rejects_unknown_resize_mode(tmp_path):
    from clip_edge.manifest import check_manifest
    from clip_edge.preprocess import preprocess

    manifest = {"image": {"size": 8, "mean": [0.5] * 3, "std": [0.5] * 3,
                          "resize_mode": "longest"}}
    with pytest.raises(ValueError, match="image.resize_mode must be one of"):
        check_manifest(str(tmp_path), manifest)
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        preprocess([np.zeros((4, 4, 3), np.uint8)], 8, resize_mode="longest")


@pytest.mark.parametrize("bad, match, config_match", [
    ({"resize_mode": "longest"}, "resize_mode must be one of", "resize_mode` must be one of"),
    ({"mean": (0.5, 0.5)}, "mean must be 3 finite numbers", "mean` must be 3 numbers"),
    ({"std": (0.5, 0.0, 0.5)}, "std must be positive", "std` must be positive"),
])
def test_bad_preprocessing_arguments(bad, match, config_match):
    with pytest.raises(ValueError, match=match):
        ImagePreprocessor(32, **bad)
    with pytest.raises(ValueError, match=match):
        preprocess_tf(np.zeros((4, 4, 3), np.uint8), 32, **bad)
    with pytest.raises(ValueError, match=match):
        preprocessor_model(32, **{"mean": (0.5,) * 3, "std": (0.5,) * 3, **bad})
    with pytest.raises(ValueError, match="`preprocessing." + config_match):
        PreprocessingConfig(**bad)


# ------------------------------------------------- file paths and PIL images
def test_file_paths_pil_images_and_arrays_mix(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (41, 29, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (30, 45), dtype=np.uint8)
    paths = []
    for name, array in (("rgb.png", rgb), ("rgba.png", rgba), ("gray.png", gray)):
        Image.fromarray(array).save(tmp_path / name)
        paths.append(tmp_path / name)
    for resize_mode in ("shortest", "squash"):
        pre = ImagePreprocessor(24, resize_mode=resize_mode)
        from_arrays = pre([rgb, rgba, gray])
        mixed = pre([str(paths[0]), paths[1], Image.open(paths[2])])
        np.testing.assert_array_equal(mixed, from_arrays)
        np.testing.assert_array_equal(pre(paths[0]), from_arrays[:1])
        palette = Image.open(paths[0]).convert("P")  # converted to RGB as CLIP does
        assert pre([palette, rgb]).shape == (2, 24, 24, 3)


def test_bad_items_are_named_by_index(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    pre = ImagePreprocessor(16)
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"images\[2\]: No image file at .*missing\.png"):
        pre([image, image, str(tmp_path / "missing.png")])
    with pytest.raises(ValueError, match=r"images\[1\]: .*notes\.txt' is not an image file"):
        pre([image, pathlib.Path(tmp_path / "notes.txt")])
    with pytest.raises(ValueError, match=r"images\[0\]: .*received 2 channels"):
        pre([np.zeros((8, 8, 2), np.uint8), image])


def test_export_folder_carries_the_squash_preprocessing(tmp_path):
    """The export writes the model's preprocessing into its graph (export_towers' writer)."""
    from clip_edge.preprocess import preprocess as edge_preprocess

    from keras_clip.export.towers import _write_graphs

    values = tiny_config("vit").to_dict()
    values["preprocessing"] = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}
    model = keras_clip.CLIP(CLIPConfig.from_dict(values))
    graphs = _write_graphs(model, str(tmp_path), ("image_encoder",))
    image = np.random.default_rng(2).integers(0, 256, (45, 80, 3), dtype=np.uint8)
    ours = ImagePreprocessor.for_model(model)(image)
    graph = run_preprocessor_graph(str(tmp_path / graphs["image_preprocessor"]), image)
    assert np.abs(graph - ours).max() <= 2.01 / 255 / 0.5
    manifest = model_values(model)["image"]
    edge = edge_preprocess([image], manifest["size"], manifest["mean"], manifest["std"],
                           manifest["resize_mode"])
    assert np.abs(edge - ours).max() <= EAGER_MAX
