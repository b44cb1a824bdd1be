"""The keras-clip command line: the reduced demo, and one-line errors on bad input."""

import json
import os
import os

import numpy as np
import pytest

from keras_clip.cli import main


def test_reduced_demo_writes_its_outputs_and_sane_numbers(tmp_path, capsys):
    output = tmp_path / "demo"
    code = main(["demo", "--output", str(output), "--samples", "256", "--batch-size", "64",
                 "--epochs", "1", "--eval-samples", "60"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "zero-shot top-1, seen combinations" in printed
    for name in ("training_curves.png", "similarity_matrix.png", "zero_shot_confusion.png",
                 "summary.json", "model/config.json", "export/manifest.json",
                 "export/image_encoder.onnx", "export/text_encoder.onnx"):
        assert (output / name).is_file(), name
    summary = json.loads((output / "summary.json").read_text())
    assert np.isfinite(summary["final_loss"])
    for key in ("zero_shot_seen_top1", "zero_shot_heldout_top1_among_all", "linear_probe_top1"):
        assert 0.0 <= summary[key] <= 1.0
    assert 0.0 <= summary["retrieval"]["image_to_text_recall@1"] <= 1.0
    fp32, int8 = summary["edge_runtime"]["fp32"], summary["edge_runtime"]["int8"]
    assert fp32["image_cosine_min"] > 0.9999 and fp32["text_cosine_min"] > 0.9999
    assert fp32["zero_shot_agreement"] >= 0.98
    assert int8["image_cosine_min"] > 0.9 and int8["text_cosine_min"] > 0.9


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "zeroshot", "--model", "no_such_model"], "neither a preset"),
        (["embed", "--model", "vit_b32", "--random-weights", "--images", "/no/such/folder",
          "-o", "x.npy"], "is not a folder"),
        (["export", "vit_b99", "--random-weights"], "Unknown preset 'vit_b99'"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]


def test_embed_texts_writes_npy(tmp_path):
    from keras_clip import CLIP
    from tests.conftest import tiny_config

    model_dir = tmp_path / "model"
    CLIP(tiny_config("vit", vocab_size=49408)).save_to_preset(str(model_dir))
    captions = tmp_path / "captions.txt"
    captions.write_text("a red circle\na blue star\n\n")
    out = tmp_path / "emb.npy"
    assert main(["embed", "--model", str(model_dir), "--texts", str(captions), "-o", str(out),
                 "--normalize"]) == 0
    embeddings = np.load(out)
    assert embeddings.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert (tmp_path / "emb.txt").read_text().splitlines() == ["a red circle", "a blue star"]


def test_presets_lists_the_nine(capsys):
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["preset"] for row in rows} >= {"rn50", "vit_b32", "vit_l14_336"}


def test_train_command_runs_the_training_script(tmp_path):
    config = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "tiny_clip.json")
    out = tmp_path / "run"
    assert main(["train", "--synthetic", "64", "--config", config, "--batch-size", "32",
                 "--epochs", "1", "--output-dir", str(out), "--no-tensorboard",
                 "--verbose", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["history"]["loss"][-1])
    assert (out / "final" / "config.json").is_file()
