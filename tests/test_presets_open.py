"""The open_clip presets: `config=`, shape matching, writing open_clip / transformers files.

Goldens in tests/golden/parity (see scripts/make_parity_reference.py):
`tiny_variants.*` is an open_clip model with exact GELU, head width 32, MLP
ratio 3, 4 text heads on width 128 and 48-pixel images; `roundtrip.npz` holds
open_clip's and transformers' embeddings from the files keras_clip wrote
(`roundtrip/`) and those files' SHA-256.
"""

import hashlib
import json
import os
import subprocess
import warnings

import numpy as np
import pytest

import keras_clip
from keras_clip import cli
from keras_clip.presets import config_match, list_presets, preset_config
from keras_clip.presets.download import weight_sources
from keras_clip.presets.openai_checkpoint import config_from_state_dict
from tests.test_parity import (
    GOLDEN,
    REFERENCE_PYTHON,
    ROOT,
    assert_parity,
    parity_errors,
)

VARIANTS = os.path.join(GOLDEN, "tiny_variants.safetensors")
VARIANTS_CONFIG = os.path.join(GOLDEN, "tiny_variants.json")
OPEN_FAMILIES = ("LAION-2B", "DataComp-XL", "DFN", "MetaCLIP")


def sha256(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def shaped_state_dict(name):
    """A state dict with the shapes of preset `name` (zero-stride arrays: no memory)."""
    shapes = config_match.expected_shapes(preset_config(name))
    return {key: np.broadcast_to(np.float32(0), shape) for key, shape in shapes.items()}


def variants_model():
    return keras_clip.from_preset(VARIANTS, config=VARIANTS_CONFIG)


def assert_embeddings(model, images, token_ids, image_expected, text_expected):
    for actual, expected in ((model.encode_image(images), image_expected),
                             (model.encode_text(token_ids), text_expected)):
        cosine, relative = parity_errors(np.asarray(actual), expected)
        assert cosine >= 0.99999 and relative <= 1e-4, (cosine, relative)


def test_at_least_25_presets_each_with_weights_and_facts():
    sources = weight_sources()
    assert len(list_presets()) >= 25
    assert sorted(sources) == list_presets()
    for name in list_presets():
        source = sources[name]
        assert source["family"] in ("OpenAI",) + OPEN_FAMILIES
        top1 = source["imagenet_zero_shot_top1"]
        assert top1 is None or 50 < top1 < 90, name
        assert source["sha256"] or source["revision"] == "main", name
        assert source["pinned"] is bool(source["sha256"]), name  # says which are pinned
        if source["family"] != "OpenAI":
            assert "openclip_results.csv" in source["_source"], name


def test_tiny_variants_parity_with_config_json():
    model = variants_model()
    vision, text = model.config.vision, model.config.text
    assert (vision.heads, vision.mlp_dim, vision.activation) == (3, 288, "gelu")
    assert vision.image_size == 48
    assert (text.heads, text.activation) == (4, "gelu")
    assert_parity(model, np.load(os.path.join(GOLDEN, "tiny_variants.npz")))


def test_tiny_variants_parity_with_config_object():
    config = keras_clip.config.CLIPConfig.from_json(VARIANTS_CONFIG)
    model = keras_clip.from_preset(VARIANTS, config=config)
    assert_parity(model, np.load(os.path.join(GOLDEN, "tiny_variants.npz")))


def test_shapes_matching_no_config_raise_naming_tensors():
    with pytest.raises(ValueError, match=r"matches no known config.*conv1\.weight: expected"):
        keras_clip.from_preset(VARIANTS)


def test_config_disagreeing_with_file_names_tensor_and_shapes():
    path = os.path.join(GOLDEN, "tiny_vit.safetensors")
    with pytest.raises(ValueError, match=r"visual\.conv1\.weight: expected \(96, 3, 8, 8\), "
                                         r"received \(128, 3, 8, 8\)"):
        keras_clip.from_preset(path, config=VARIANTS_CONFIG)
    with pytest.raises(ValueError, match="does not fit the config 'vit_b32_laion2b'"):
        keras_clip.from_preset(path, config="vit_b32_laion2b")


@pytest.mark.parametrize("name, close", [("vit_b32_laion", "vit_b32_laion2b"),
                                         ("vit_h14_dfn5", "vit_h14_dfn5b")])
def test_unknown_preset_suggests_close_names(name, close):
    with pytest.raises(ValueError, match=f"Did you mean '{close}'"):
        keras_clip.from_preset(name)
    with pytest.raises(ValueError, match=f"Did you mean '{close}'"):
        keras_clip.from_preset(os.path.join(GOLDEN, "tiny_vit.safetensors"), config=name)


def test_expected_shapes_equal_a_built_models_checkpoint():
    """`shaped_state_dict` builds inputs from `expected_shapes`: check it against a real model."""
    from keras_clip.models.openai_keys import state_dict_from_model
    from tests.conftest import tiny_config

    config = tiny_config("vit", vocab_size=1000, heads=2, mlp_dim=96)
    actual = {k: tuple(v.shape) for k, v in state_dict_from_model(keras_clip.CLIP(config)).items()}
    assert config_match.expected_shapes(config) == actual


def test_openai_shapes_load_as_openai_and_warn_naming_open_presets():
    state_dict = shaped_state_dict("vit_b32")
    inferred = config_from_state_dict(state_dict)
    with pytest.warns(UserWarning, match="vit_b32_datacomp_xl, vit_b32_laion2b, "
                                         "vit_b32_metaclip_fullcc"):
        config = config_match.choose_config(state_dict, inferred, "x.safetensors")
    assert (config.vision.activation, config.vision.heads) == ("quick_gelu", 12)


def test_shapes_of_one_open_preset_load_with_it():
    state_dict = shaped_state_dict("vit_g14_laion2b")
    inferred = config_from_state_dict(state_dict)
    assert inferred.vision.heads == 22  # what OpenAI's rule would wrongly say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = config_match.choose_config(state_dict, inferred, "x.safetensors")
    assert config == preset_config("vit_g14_laion2b")
    assert (config.vision.heads, config.vision.activation) == (16, "gelu")


def test_shapes_of_several_open_presets_raise_listing_them():
    state_dict = shaped_state_dict("vit_h14_laion2b")
    with pytest.raises(ValueError, match="vit_h14_dfn5b, vit_h14_laion2b, "
                                         "vit_h14_metaclip_fullcc"):
        config_match.choose_config(state_dict, config_from_state_dict(state_dict), "x")


def test_save_open_clip_is_the_file_open_clip_loaded(tmp_path):
    reference = np.load(os.path.join(GOLDEN, "roundtrip.npz"))
    inputs = np.load(os.path.join(GOLDEN, "tiny_variants.npz"))
    model = variants_model()
    path = tmp_path / "out.safetensors"
    model.save_open_clip(path)
    assert sha256(path) == str(reference["open_clip_sha256"])
    assert_embeddings(model, inputs["images"], inputs["token_ids"],
                      reference["open_clip_image_embeddings"],
                      reference["open_clip_text_embeddings"])
    again = keras_clip.from_preset(path, config=VARIANTS_CONFIG)
    assert_parity(again, inputs)


def test_save_transformers_is_the_folder_transformers_loaded(tmp_path):
    reference = np.load(os.path.join(GOLDEN, "roundtrip.npz"))
    inputs = np.load(os.path.join(GOLDEN, "tiny_variants.npz"))
    folder = tmp_path / "hf"
    variants_model().save_transformers(folder)
    assert sha256(folder / "model.safetensors") == str(reference["transformers_sha256"])
    with open(folder / "config.json") as file:
        values = json.load(file)
    assert values["vision_config"]["num_attention_heads"] == 3
    assert values["text_config"]["hidden_act"] == "gelu"
    again = keras_clip.from_preset(folder)  # the folder carries its own config
    assert_embeddings(again, inputs["images"], inputs["token_ids"],
                      reference["transformers_image_embeddings"],
                      reference["transformers_text_embeddings"])


def test_writers_refuse_bad_targets(tmp_path):
    vit = keras_clip.from_preset(os.path.join(GOLDEN, "tiny_vit.safetensors"))
    with pytest.raises(ValueError, match=r"\.safetensors file"):
        vit.save_open_clip(tmp_path / "x.bin")
    resnet_config = dict(embed_dim=32, vision=dict(type="resnet", image_size=64, width=8,
                                                   layers=[1, 1, 1, 1]),
                         text=dict(width=64, layers=1, vocab_size=100, context_length=8))
    with pytest.raises(ValueError, match="needs a ViT image tower"):
        keras_clip.CLIP(resnet_config).save_transformers(tmp_path / "hf")


def test_config_refused_for_sources_with_their_own(tmp_path):
    with pytest.raises(ValueError, match="has its own config"):
        keras_clip.from_preset("vit_b32", weights=None, config="vit_b32_laion2b")


def test_cli_convert_round_trips_open_clip_file(tmp_path, capsys):
    folder, back = tmp_path / "keras", tmp_path / "back.safetensors"
    assert cli.main(["convert", VARIANTS, str(folder), "--config", VARIANTS_CONFIG]) == 0
    assert cli.main(["convert", str(folder), str(back)]) == 0
    reference = np.load(os.path.join(GOLDEN, "roundtrip.npz"))
    assert sha256(back) == str(reference["open_clip_sha256"])  # the file open_clip loaded
    hf = tmp_path / "hf"
    assert cli.main(["convert", str(folder), str(hf), "--to", "transformers"]) == 0
    assert sha256(hf / "model.safetensors") == str(reference["transformers_sha256"])


@pytest.mark.parametrize("argv, message", [
    (["convert", VARIANTS, "out"], "matches no known config"),
    (["convert", VARIANTS, "out", "--config", "vit_b32_laion"], "Did you mean"),
    (["convert", VARIANTS, "out.bin", "--to", "open_clip"], "writes a .safetensors file"),
    (["convert", VARIANTS, GOLDEN], "already exists"),
])
def test_cli_convert_bad_input_exits_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and len(error.splitlines()) == 1


def test_cli_presets_groups_families(capsys):
    assert cli.main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    families = [row["family"] for row in rows]
    assert len(rows) >= 25
    assert families == sorted(families, key=(("OpenAI",) + OPEN_FAMILIES).index)


@pytest.mark.large
@pytest.mark.parametrize("preset", ["vit_b32_laion2b", "vit_h14_laion2b", "vit_l14_dfn2b"])
def test_full_size_open_preset_parity_with_open_clip(preset, tmp_path):
    if not REFERENCE_PYTHON:
        pytest.skip("set KERAS_CLIP_REFERENCE_PYTHON to a python with open_clip installed")
    script = os.path.join(ROOT, "scripts", "make_parity_reference.py")
    subprocess.run([REFERENCE_PYTHON, script, preset, "--out", str(tmp_path)], check=True,
                   cwd=ROOT)
    model = keras_clip.from_preset(str(tmp_path / f"{preset}.safetensors"), config=preset)
    assert model.config.to_dict()["vision"] == preset_config(preset).to_dict()["vision"]
    assert_parity(model, np.load(tmp_path / f"{preset}.npz"))


@pytest.mark.large
def test_full_size_open_preset_exports_to_onnx_with_parity(tmp_path):
    """Issue 14 item 5: `vit_b16_laion2b` (random weights) through export_towers to ONNX."""
    import keras

    from keras_clip.export import export_towers
    from keras_clip.export.parity import onnx_parity

    keras.utils.set_random_seed(0)
    model = keras_clip.from_preset("vit_b16_laion2b", weights=None)
    assert model.config.vision.activation == "gelu"
    manifest = export_towers(model, str(tmp_path), formats=("onnx",))
    assert manifest["architecture"] == "vit_b16_laion2b"
    assert manifest["image"]["resize_mode"] == model.config.preprocessing.resize_mode
    for tower, variants in manifest["onnx"].items():
        figures = onnx_parity(model, str(tmp_path / variants["fp32"]), tower)
        print(tower, figures)
        assert figures["relative"] <= 1e-4 and figures["min_cosine"] >= 0.99999, (tower, figures)


@pytest.mark.parametrize("preprocessing", [
    dict(),
    dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    dict(resize_mode="squash"),
])
def test_transformers_folder_carries_the_preprocessing(tmp_path, preprocessing):
    """transformers' own CLIPImageProcessor reads our preprocessor_config.json and
    prepares images as ImagePreprocessor does; the folder loads back with it."""
    import dataclasses

    import transformers
    from PIL import Image

    from keras_clip.config import PreprocessingConfig

    model = variants_model()
    config = dataclasses.replace(model.config, preprocessing=PreprocessingConfig(**preprocessing))
    folder = tmp_path / "hf"
    keras_clip.CLIP(config).save_transformers(folder)
    assert keras_clip.from_preset(folder).config.preprocessing == config.preprocessing
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 90, 3), np.uint8))
    processor = transformers.CLIPImageProcessor.from_pretrained(folder)
    theirs = np.transpose(processor(images=image, return_tensors="np")["pixel_values"], (0, 2, 3, 1))
    ours = keras_clip.ImagePreprocessor.for_model(config)(np.asarray(image))
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).mean() < 0.01


def test_transformers_preprocessing_other_than_bicubic_is_refused(tmp_path):
    import json as json_module

    folder = tmp_path / "hf"
    variants_model().save_transformers(folder)
    values = json_module.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json_module.dumps(dict(values, resample=2)))
    with pytest.raises(ValueError, match=r"preprocessor_config.json: .*bicubic.*resample=2"):
        keras_clip.from_preset(folder)
