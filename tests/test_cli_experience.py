"""What a new user meets: a quiet, fast `keras-clip`, one-line errors, safe output folders.

The command-line cases run `python -m keras_clip.cli` as a subprocess, as a
user would; `main()` is used in-process only where a case needs no process of
its own.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from keras_clip.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = {"keras", "tensorflow", "jax", "torch"}
REPORT_MODULES = (
    "import sys\n"
    "from keras_clip.cli import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    f"print('BACKEND_MODULES', sorted(m for m in sys.modules if m.split('.')[0] in {BACKENDS!r}))\n"
)


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command itself must hide TensorFlow's lines
    return env


def run_cli(argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "keras_clip.cli", *argv], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=600, **kwargs)


def backend_modules(argv):
    """`(backend modules imported, stdout, stderr)` of `keras-clip argv` in a fresh process.

    The script is named `keras-clip`, as the installed console script is.
    """
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "keras-clip")
        with open(script, "w") as handle:
            handle.write(REPORT_MODULES)
        result = subprocess.run([sys.executable, script, *argv], env=_env(), cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
    out, _, modules = result.stdout.rpartition("BACKEND_MODULES ")
    return modules.strip(), out, result.stderr


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A saved tiny preset folder (random weights)."""
    from keras_clip import CLIP
    from tests.conftest import tiny_config

    folder = str(tmp_path_factory.mktemp("cli_experience") / "tiny")
    CLIP(tiny_config("vit", vocab_size=49408)).save_to_preset(folder)
    return folder


# ------------------------------------------------------- no backend for help, presets, errors


@pytest.mark.parametrize("argv", [["--help"], ["presets"], ["export", "--help"],
                                  ["demo", "--help"], ["train", "--help"],
                                  ["finetune", "--help"]])
def test_help_and_presets_import_no_backend_and_print_nothing_on_stderr(argv):
    modules, out, err = backend_modules(argv)
    assert modules == "[]"
    assert err == ""
    assert "usage: keras-clip" in out or "vit_b32" in out


def test_finetune_help_lists_the_experiment_recipes():
    from keras_clip.commands import finetune
    from keras_clip.finetune import experiment

    assert finetune.METHODS == experiment.METHODS


def test_argument_error_imports_no_backend():
    modules, _, err = backend_modules(["demo", "--epochs", "many"])
    assert modules == "[]"
    assert err.strip().splitlines()[-1].startswith("keras-clip demo: error: argument --epochs")


def test_presets_sorts_numbers_by_value_and_explains_pinned():
    result = run_cli(["presets"])
    assert result.returncode == 0 and result.stderr == ""
    header, *lines = result.stdout.splitlines()
    assert "sha256 pinned" in header
    names = [line.split()[1] for line in lines if line.startswith("OpenAI")]
    assert names.index("rn50") < names.index("rn50x4") < names.index("rn101")
    assert names.index("vit_b16") < names.index("vit_b32")
    assert "sha256 pinned" in run_cli(["presets", "--help"]).stdout


def test_every_option_of_demo_is_described_with_its_default():
    result = run_cli(["demo", "--help"])
    text = " ".join(result.stdout.split())
    for flag, default in (("--epochs", "15"), ("--batch-size", "128"),
                          ("--learning-rate", "0.002"), ("--seed", "0")):
        metavar = flag.lstrip("-").upper().replace("-", "_")
        described = text.split(f"{flag} {metavar} ")[-1].split(" --")[0]  # not the usage line
        words, _, rest = described.partition("(default:")
        assert len(words.split()) >= 2 and rest.startswith(f" {default})"), (flag, described)
    assert "Example: keras-clip demo" in text and "demo_output" in text


def test_model_commands_hide_tensorflow_start_up_lines_unless_verbose(tiny_preset, tmp_path):
    from keras_clip.commands.backend_logs import keep

    env = dict(_env(), KERAS_BACKEND="tensorflow")  # the backend that prints them
    runs = {}
    for flags in ([], ["--verbose"]):
        target = str(tmp_path / f"model{len(flags)}.safetensors")
        runs[bool(flags)] = subprocess.run(
            [sys.executable, "-m", "keras_clip.cli", *flags, "convert", tiny_preset, target],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert runs[bool(flags)].returncode == 0, runs[bool(flags)].stderr
    assert runs[False].stderr == ""
    shown = [line for line in runs[True].stderr.splitlines() if not keep(line.encode())]
    if not shown:
        pytest.skip("this TensorFlow build prints no start-up lines to hide")


# ------------------------------------------------------------------- one-line errors


def test_misspelled_preset_suggests_the_closest_names():
    result = run_cli(["export", "vit_b3", "--random-weights"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Did you mean 'vit_b32'" in lines[0]


@pytest.mark.parametrize("argv, flag", [
    (["eval", "zeroshot", "--model", "vit_b3"], "--model 'vit_b3'"),
    (["convert", "vit_b32", "x.safetensors", "--config", "vit_l41"], "--config 'vit_l41'"),
])
def test_misspelled_preset_names_the_flag(argv, flag, capsys):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Did you mean" in lines[0]


def test_misspelled_preset_in_python_suggests_the_closest_names():
    import keras_clip

    with pytest.raises(ValueError, match="Did you mean 'vit_b32'"):
        keras_clip.from_preset("vit_b3")


def test_one_class_zero_shot_warns(tiny_preset):
    import keras_clip
    from keras_clip.evaluation import ZeroShotClassifier

    model = keras_clip.from_preset(tiny_preset)
    with pytest.warns(UserWarning, match="one class"):
        ZeroShotClassifier(model, ["cat"], templates=["a photo of a {}."])


def test_zero_shot_progress_bar_only_for_many_prompts(tiny_preset, capsys):
    import keras_clip
    from keras_clip.evaluation import ZeroShotClassifier

    model = keras_clip.from_preset(tiny_preset)
    ZeroShotClassifier(model, ["cat", "dog"], templates=["a {}."], batch_size=4)
    assert capsys.readouterr().err == ""
    ZeroShotClassifier(model, ["cat", "dog"], templates=["a {}.", "the {}!", "one {}"],
                       batch_size=4)  # 6 prompts: two batches
    assert "it/s" in capsys.readouterr().err  # tqdm's bar
    ZeroShotClassifier(model, ["cat", "dog"], templates=["a {}.", "the {}!", "one {}"],
                       batch_size=4, verbose=0)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------- export output folders


def test_export_refuses_a_foreign_non_empty_folder(tiny_preset, tmp_path):
    output = tmp_path / "photos"
    output.mkdir()
    (output / "holiday.jpg").write_bytes(b"not ours")
    result = run_cli(["export", tiny_preset, "--formats", "onnx", "-o", str(output)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty" in lines[0] and "--overwrite" in lines[0]
    assert os.listdir(output) == ["holiday.jpg"]


def _listing_sha256(folder):
    """SHA-256 of `sha256sum`'s listing of every file in `folder`, sorted by path."""
    lines = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()
            lines.append((os.path.relpath(path, folder).replace(os.sep, "/"), digest))
    text = "".join(f"{digest}  {path}\n" for path, digest in sorted(lines))
    return hashlib.sha256(text.encode()).hexdigest()


def test_overwrite_replaces_everything_and_a_re_export_leaves_no_stale_files(tiny_preset,
                                                                             tmp_path, capsys):
    from keras_clip import from_preset
    from keras_clip.export import export_towers, read_manifest

    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    assert main(["export", tiny_preset, "--formats", "onnx", "--int8", "-o", str(output),
                 "--overwrite"]) == 0
    printed = capsys.readouterr()
    assert "[3/7] quantizing image_encoder.onnx to int8…" in printed.out
    assert "pre-processing before quantization" not in printed.err
    assert not (output / "notes.txt").exists() and (output / "text_encoder.int8.onnx").exists()
    assert read_manifest(str(output))["source"] == {
        "path": tiny_preset, "sha256": _listing_sha256(tiny_preset), "random_weights": False}

    # a previous export of ours is replaced whole, without --overwrite
    export_towers(from_preset(tiny_preset), str(output), formats=("onnx",),
                  towers=("text_encoder",))
    files = set(os.listdir(output))
    listed = {name.split("/")[0] for name in read_manifest(str(output))["files"]}
    assert files == listed | {"manifest.json"}
    assert not [name for name in files if name.startswith("image_") or ".int8." in name], files
    assert [name for name in os.listdir(tmp_path) if name.startswith(".out.")] == []


@pytest.mark.large
def test_export_process_is_quiet_and_ends_with_a_verdict_per_file(tiny_preset, tmp_path):
    output = tmp_path / "out"
    result = run_cli(["export", tiny_preset, "--formats", "onnx", "--int8", "-o", str(output),
                      "--check"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no TensorFlow start-up lines, no onnxruntime advice
    assert "[1/8] loading the model…" in result.stdout
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 4 and all(line.startswith("PASS") for line in verdicts), verdicts


def test_killed_export_leaves_no_folder_that_clip_edge_accepts(tiny_preset, tmp_path):
    clip_edge = pytest.importorskip("clip_edge")
    output = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "keras_clip.cli", "export", tiny_preset,
                                "--formats", "onnx", "-o", str(output)], env=_env(), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        staged = []
        while not staged and process.poll() is None and time.monotonic() < deadline:
            staged = [name for name in os.listdir(tmp_path) if name.startswith(".killed.partial")]
            time.sleep(0.05)
        assert staged, "the export finished or failed before its staging folder appeared"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not output.exists()
    for folder in [output, *(tmp_path / name for name in staged)]:
        with pytest.raises((ValueError, OSError)):
            clip_edge.ClipEdge(str(folder))


def test_check_verdicts_fail_below_the_manifest_threshold():
    from keras_clip.export.command import check_verdicts

    manifest = {"conformance": {"thresholds": {"fp32": {"image": 0.999, "text": 0.9999},
                                               "int8": {"image": 0.99, "text": 0.99}}}}
    verdicts = check_verdicts({"text_encoder.onnx": {"min_cosine": 0.9998},
                               "image_encoder.int8.onnx": {"min_cosine": 0.995},
                               "image_encoder/": {"min_cosine": float("nan")}}, manifest)
    assert [passed for _, passed in verdicts] == [False, True, False]
    assert verdicts[0][0].split() == ["FAIL", "text_encoder.onnx", "min", "cosine", "0.999800",
                                      "<", "0.9999", "(fp32", "text)"]


def test_manifest_source_of_a_preset_name():
    from keras_clip.export.manifest import source_record

    with open(os.path.join(ROOT, "keras_clip", "presets", "weights.json")) as file:
        pinned = json.load(file)["vit_b32"]["sha256"]
    assert source_record("vit_b32") == {"preset": "vit_b32", "sha256": pinned,
                                        "random_weights": False}
    assert source_record("vit_b32", random_weights=True)["sha256"] is None


# ------------------------------------------------------------------- the demo


def test_demo_refuses_to_overwrite_a_previous_summary(tmp_path, capsys):
    output = tmp_path / "demo"
    output.mkdir()
    (output / "summary.json").write_text("{}")
    assert main(["demo", "--output", str(output), "--samples", "64", "--batch-size", "64",
                 "--epochs", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "summary.json" in lines[0] and "--overwrite" in lines[0]
    assert os.listdir(output) == ["summary.json"]
