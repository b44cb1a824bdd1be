"""The keras-clip command line: the reduced demo, and one-line errors on bad input."""

import functools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_clip.cli import main


def test_reduced_demo_writes_its_outputs_and_sane_numbers(tmp_path, capsys):
    output = tmp_path / "demo"
    code = main(["demo", "--output", str(output), "--samples", "256", "--batch-size", "64",
                 "--epochs", "1", "--eval-samples", "60"])
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "zero-shot top-1, seen combinations" in printed
    from keras_clip.demo import PHASES

    announced = [line for line in printed.splitlines() if line.startswith("[")]
    assert announced == [f"[{k}/5] {name}…" for k, name in enumerate(PHASES, 1)]
    assert "will be ignored" not in captured.err  # Keras' fit(shuffle=True) warning
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
        (["eval", "zeroshot", "--model", "no_such_model"], "neither a built-in preset"),
        (["embed", "--model", "vit_b32", "--random-weights", "--images", "/no/such/folder",
          "-o", "x.npy"], "is not a folder"),
        (["export", "vit_b99", "--random-weights"], "preset 'vit_b99' is neither"),
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


def test_train_command_runs_the_training_script(tmp_path, capsys, recwarn):
    config = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "tiny_clip.json")
    out = tmp_path / "run"
    assert main(["train", "--synthetic", "64", "--config", config, "--batch-size", "32",
                 "--epochs", "1", "--output-dir", str(out), "--no-tensorboard",
                 "--verbose", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["history"]["loss"][-1])
    assert (out / "final" / "config.json").is_file()
    shown = capsys.readouterr().err + " ".join(str(w.message) for w in recwarn)
    assert "will be ignored" not in shown  # Keras' fit(shuffle=True) warning


def test_every_sub_command_owns_add_arguments_and_run():
    from keras_clip.cli import commands

    modules = commands()
    assert list(modules) == ["demo", "train", "eval", "export", "embed", "presets", "convert",
                             "finetune"]
    for name, module in modules.items():
        assert callable(module.add_arguments) and callable(module.run), name
        assert module.PARSER["help"], name


def test_train_options_are_parsed_by_the_cli_parser_itself():
    from keras_clip.cli import build_parser

    args = build_parser().parse_args(["train", "--synthetic", "64", "--config", "c.json",
                                      "--remat", "--batch-size", "32"])
    assert (args.synthetic, args.config, args.remat, args.batch_size) == (64, "c.json", True, 32)
    assert args.epochs == 10 and args.precision == "float32"  # the script's defaults


def test_train_bad_flag_value_is_one_line_and_exit_2(capsys):
    assert main(["train", "--synthetic", "64", "--config", "c.json", "--lr", "0"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["keras-clip train: error: `--lr` must be a finite number > 0, received 0.0."]


def test_training_script_builds_a_remat_model_once(tmp_path, monkeypatch):
    import keras_clip
    from keras_clip.training import script
    from tests.conftest import tiny_config

    folder = str(tmp_path / "preset")
    saved = keras_clip.CLIP(tiny_config("vit", vocab_size=49408))
    saved.save_to_preset(folder)
    built, init = [], keras_clip.CLIP.__init__

    @functools.wraps(init)  # from_preset reads CLIP's options off this signature
    def counting_init(self, *args, **kwargs):
        built.append(kwargs.get("remat"))
        init(self, *args, **kwargs)

    monkeypatch.setattr(keras_clip.CLIP, "__init__", counting_init)
    model = script.build_model(script.parse_args(["--synthetic", "64", "--batch-size", "32",
                                                  "--preset", folder, "--remat"]))
    assert built == [True] and model.remat is True
    for expected, actual in zip(saved.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_training_script_zero_shot_goes_through_zero_shot_classifier(monkeypatch):
    import keras_clip
    from keras_clip import CLIPTokenizer, data, evaluation
    from keras_clip.training import script
    from tests.conftest import tiny_config

    model = keras_clip.CLIP(tiny_config("vit", vocab_size=49408))
    made = []

    class Recording(evaluation.ZeroShotClassifier):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append((list(self.class_names), self.templates))

    monkeypatch.setattr(evaluation, "ZeroShotClassifier", Recording)
    scores = script.zero_shot(model, model.image_size, 16, seed=3, batch_size=8)
    assert [names for names, _ in made] == [data.class_names(split)
                                           for split in ("train", "all", "heldout")]
    assert all(templates == ["a photo of a {}."] for _, templates in made)

    # The same figure computed by hand: cosine of unit embeddings, argmax per image.
    tokenizer = CLIPTokenizer(context_length=model.context_length)
    names = data.class_names("all")
    text = np.asarray(model.encode_text(np.asarray(tokenizer(
        [f"a photo of a {name}." for name in names]))), dtype="float64")
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    shapes = data.SyntheticShapes(image_size=model.image_size, seed=3, split="heldout")
    batches = list(shapes.as_tf_dataset(8, num_samples=16, training=False, include_labels=True,
                                        tokenizer=tokenizer).as_numpy_iterator())
    hits = 0
    for batch in batches:
        image = np.asarray(model.encode_image(batch["images"]), dtype="float64")
        predicted = [names[i] for i in np.argmax(image @ text.T, axis=1)]
        hits += sum(p == shapes.classes[label] for p, label in zip(predicted, batch["labels"]))
    assert scores["heldout_among_all"] == hits / 16


def test_demo_without_the_edge_runtime_stops_before_training(tmp_path, monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "clip_edge" else find_spec(name, *a))
    assert main(["demo", "--output", str(tmp_path / "demo"), "--samples", "64",
                 "--batch-size", "64", "--epochs", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "pip install ./export" in error[0] and "--no-export" in error[0]
    assert not (tmp_path / "demo" / "model").exists()


# ------------------------------------------------- bad files and flags: one line, exit 2


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """Broken preset/transformers folders, a binary table, a tiny model; name -> path."""
    from keras_clip import CLIP
    from tests.conftest import tiny_config

    root = tmp_path_factory.mktemp("bad_inputs")
    paths = {"root": str(root)}
    configs = {"invalid_json": "{not json", "json_list": "[1, 2]",
               "no_clip_key": '{"format_version": 1}'}
    for name, text in configs.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(text)
        (root / name / "model.weights.h5").write_bytes(b"")
        paths[name] = str(root / name)
    (root / "hf").mkdir()
    (root / "hf" / "config.json").write_text(
        json.dumps({"model_type": "clip", "text_config": {"hidden_size": 64}}))
    (root / "hf" / "model.safetensors").write_bytes(b"")
    paths["hf"] = str(root / "hf")
    (root / "table.csv").write_bytes(bytes(range(256)) * 4)  # binary, not UTF-8
    paths["binary_csv"] = str(root / "table.csv")
    (root / "captions.txt").write_text("a cat\n")
    paths["captions"] = str(root / "captions.txt")
    paths["model"] = str(root / "model")
    CLIP(tiny_config("vit", vocab_size=49408)).save_to_preset(paths["model"])
    return paths


# (argv with {placeholders} for bad_inputs paths, the expected start of the message)
BAD_FILE_CASES = {
    "invalid_json": (["embed", "--model", "{invalid_json}", "--texts", "{captions}"],
                     "{invalid_json}/config.json is not valid JSON"),
    "json_list": (["embed", "--model", "{json_list}", "--texts", "{captions}"],
                  "{json_list}/config.json holds a JSON list"),
    "no_clip_key": (["embed", "--model", "{no_clip_key}", "--texts", "{captions}"],
                    "{no_clip_key}/config.json lacks its 'clip' object"),
    "no_vision_config": (["embed", "--model", "{hf}", "--texts", "{captions}"],
                         "{hf}/config.json lacks its 'vision_config' object"),
    "csv_folder": (["eval", "retrieval", "--model", "{model}", "--csv", "{root}"],
                   "--csv '{root}' is a folder"),
    "batch_size_0": (["embed", "--model", "{model}", "--texts", "{captions}",
                      "--batch-size", "0"], "--batch-size must be a positive int"),
    "binary_csv": (["eval", "retrieval", "--model", "{model}", "--csv", "{binary_csv}"],
                   "{binary_csv} is not a UTF-8 CSV/TSV table"),
}


def _bad_case(name, paths, tmp_path):
    argv, message = BAD_FILE_CASES[name]
    argv = [a.format(**paths) for a in argv]
    if argv[0] == "embed":
        argv += ["-o", str(tmp_path / "out.npy")]
    return argv, message.format(**paths)


@pytest.mark.parametrize("case", sorted(BAD_FILE_CASES))
def test_bad_files_and_flags_give_one_line_and_exit_2(case, bad_inputs, tmp_path, capsys):
    argv, message = _bad_case(case, bad_inputs, tmp_path)
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not (tmp_path / "out.npy").exists()


def _stderr_lines(stderr):
    """stderr without TensorFlow's C++ start-up log lines."""
    noise = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")
    return [line for line in stderr.splitlines() if line.strip() and not noise.match(line)]


def _run_cli(argv):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_clip.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=300)


def _check_subprocess_case(case, paths, tmp_path):
    argv, message = _bad_case(case, paths, tmp_path)
    result = _run_cli(argv)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = _stderr_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("keras-clip ") and message in lines[0], lines


def test_cli_process_exits_2_without_traceback_for_a_json_list_config(bad_inputs, tmp_path):
    _check_subprocess_case("json_list", bad_inputs, tmp_path)


@pytest.mark.large
@pytest.mark.parametrize("case", sorted(BAD_FILE_CASES))
def test_cli_process_exits_2_without_traceback(case, bad_inputs, tmp_path):
    _check_subprocess_case(case, bad_inputs, tmp_path)


@pytest.mark.parametrize("folder, message", [
    ("invalid_json", "config.json is not valid JSON"),
    ("json_list", "config.json holds a JSON list"),
    ("no_clip_key", "config.json lacks its 'clip' object"),
    ("hf", "config.json lacks its 'vision_config' object"),
])
def test_from_preset_names_the_broken_config_file(folder, message, bad_inputs):
    from keras_clip import from_preset

    with pytest.raises(ValueError, match=re.escape(os.path.join(bad_inputs[folder], message))):
        from_preset(bad_inputs[folder])


def test_transformers_config_missing_a_field_names_the_key():
    from keras_clip.presets.transformers_checkpoint import config_from_transformers

    values = {"vision_config": {"image_size": 32, "patch_size": 16}, "text_config": {}}
    with pytest.raises(ValueError, match="x/config.json lacks the key 'hidden_size'"):
        config_from_transformers(values, source="x/config.json")
