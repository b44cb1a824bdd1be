"""`clip-edge` as a user runs it (issue 13, finding 3): label forms, options on either
side of the sub-command, every label's probability, the row list next to an
embedding file, one-line errors and skipped unreadable images.

Runs the command in subprocesses on the stand-in export folder of
tests/test_edge_hostile.py (tiny ONNX towers built in milliseconds); the
expected numbers come from the `ClipEdge` Python API on the same folder.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.test_edge import EXPORT_ROOT
from tests.test_edge_hostile import exported  # noqa: F401  (the stand-in folder fixture)

if EXPORT_ROOT not in sys.path:
    sys.path.insert(0, EXPORT_ROOT)

from clip_edge import ClipEdge

LABELS = ["cat", "dog", "bird"]


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["PYTHONPATH"] = EXPORT_ROOT
    return subprocess.run([sys.executable, "-m", "clip_edge", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with two images, one broken `.jpg` and a text file (not an image extension)."""
    root = tmp_path_factory.mktemp("edge_cli")
    folder = root / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (24, 16, 3), dtype=np.uint8)).save(folder / "b.jpg", quality=95)
    (folder / "broken.jpg").write_text("not a JPEG")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    (root / "captions.txt").write_text("a photo of a cat\n\nTwo dogs\n")
    (root / "labels.txt").write_text("cat\ndog\n\nbird\n")
    return root


def _json_lines(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_labels_space_comma_and_file_forms_agree_with_zero_shot(exported, photos):  # noqa: F811
    image = str(photos / "photos" / "a.png")
    forms = [LABELS, [",".join(LABELS)], ["cat,dog", "bird"], [str(photos / "labels.txt")]]
    results = [_cli("classify", exported, image, "--json", "--labels", *form) for form in forms]
    rows = [_json_lines(result) for result in results]
    assert all(result.stderr == "" for result in results), [r.stderr for r in results]  # quiet
    assert all(r == rows[0] for r in rows), rows
    (row,) = rows[0]
    expected = ClipEdge(exported).zero_shot([image], LABELS)[0]
    order = np.argsort(-expected)
    assert list(row["probabilities"]) == [LABELS[i] for i in order]  # most probable first
    np.testing.assert_allclose([row["probabilities"][label] for label in LABELS], expected, rtol=1e-5)
    assert (row["label"], row["probability"]) == (LABELS[order[0]], pytest.approx(expected[order[0]]))


def test_classify_text_output_lists_every_label_sorted(exported, photos):  # noqa: F811
    result = _cli("classify", exported, photos / "photos", "--labels", *LABELS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [os.path.basename(line) for line in lines if not line.startswith(" ")]
    assert names == ["a.png", "b.jpg"], result.stdout
    first = [line.split() for line in lines[1:4]]
    assert sorted(label for label, _ in first) == sorted(LABELS)
    expected = ClipEdge(exported).zero_shot([str(photos / "photos" / "a.png")], LABELS)[0]
    assert [label for label, _ in first] == [LABELS[i] for i in np.argsort(-expected)]
    np.testing.assert_allclose([float(p) for _, p in first], np.sort(expected)[::-1], atol=6e-5)
    # the broken image inside the folder is skipped and named at the end, not fatal
    assert re.fullmatch(r"clip-edge: skipped 1 unreadable image: \S*broken\.jpg: .*\n", result.stderr)


@pytest.mark.parametrize("before", [True, False])
def test_global_options_before_or_after_the_sub_command(exported, photos, before):  # noqa: F811
    options = ["--precision", "int8", "--batch-size", "1"]
    command = ["classify", exported, photos / "photos" / "a.png", "--labels", "cat", "dog"]
    result = _cli(*(options + command if before else command + options))
    assert result.returncode == 2 and re.search(r"No int8 onnx image_encoder", result.stderr), result.stderr


def test_embed_writes_the_row_list_and_skips_unreadable_images(exported, photos, tmp_path):  # noqa: F811
    result = _cli("embed", exported, "--images", photos / "photos", "--out", tmp_path / "photos")
    assert result.returncode == 0, result.stderr
    assert "broken.jpg" in result.stderr and "skipped 1 unreadable image" in result.stderr
    rows = (tmp_path / "photos.files.txt").read_text().splitlines()
    assert [os.path.basename(row) for row in rows] == ["a.png", "b.jpg"]
    np.testing.assert_allclose(np.load(tmp_path / "photos.npy"),
                               ClipEdge(exported).encode_images(rows, normalized=True), atol=1e-6)

    result = _cli("embed", exported, "--texts", photos / "captions.txt", "--out", tmp_path / "c.npy", "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    written = json.loads(result.stdout)
    assert written["rows"] == str(tmp_path / "c.texts.txt") and written["shape"] == [2, 8]
    captions = (tmp_path / "c.texts.txt").read_text().splitlines()
    assert captions == ["a photo of a cat", "Two dogs"]  # blank lines hold no row
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"),
                               ClipEdge(exported).encode_texts(captions, normalized=True), atol=1e-6)


CLASSIFY = ["classify", "{d}", "{p}/photos/a.png", "--labels", "cat", "dog"]
ERRORS = {  # name: (arguments, a regex the one error line must match)
    "missing_image": (["classify", "{d}", "{p}/missing.png", "--labels", "cat", "dog"],
                      r"IMAGE \S*missing\.png: no such file"),
    "text_file_as_image": (["classify", "{d}", "{p}/captions.txt", "--labels", "cat", "dog"],
                           r"IMAGE \S*captions\.txt: not an image file"),
    "named_broken_image": (["embed", "{d}", "--images", "{p}/photos/broken.jpg", "--out", "{p}/x.npy"],
                           r"--images \S*broken\.jpg: not an image file"),
    "no_manifest": (["classify", "{p}/photos", "{p}/photos/a.png", "--labels", "cat", "dog"],
                    r"FOLDER \S*photos: No manifest\.json"),
    "missing_folder": (["embed", "{p}/nowhere", "--texts", "{p}/captions.txt", "--out", "{p}/x.npy"],
                       r"FOLDER \S*nowhere: no such folder"),
    "empty_labels": (["classify", "{d}", "{p}/photos/a.png", "--labels", ""], r"--labels '': no labels"),
    "only_commas": (["classify", "{d}", "{p}/photos/a.png", "--labels", ",,"], r"--labels ',,': no labels"),
    "repeated_label": (CLASSIFY + ["cat"], r"--labels: 'cat' given more than once"),
    "labels_swallow_images": (["classify", "{d}", "--labels", "cat", "dog", "{p}/photos/a.png"],
                              r"required: IMAGE; give the images before --labels"),
    "image_as_labels_file": (["classify", "{d}", "{p}/photos/a.png", "--labels", "{p}/photos/b.jpg"],
                             r"--labels \S*b\.jpg: an image, not labels"),
    "bad_template": (CLASSIFY + ["--template", "a photo"], r"--template: .*exactly one '\{\}', received 'a photo'"),
    "folder_without_images": (["embed", "{d}", "--images", "{p}", "--out", "{p}/x.npy"],
                              r"--images \S+: the folder holds no image files"),
    "out_in_missing_folder": (["embed", "{d}", "--texts", "{p}/captions.txt", "--out", "{p}/no/x.npy"],
                              r"--out \S*no/x\.npy: the folder \S+ does not exist"),
    "batch_size_zero": (["--batch-size", "0"] + CLASSIFY, r"--batch-size: must be an integer >= 1, received '0'"),
    "unknown_precision": (CLASSIFY + ["--precision", "int4"], r"--precision: invalid choice: 'int4'"),
    "no_command": ([], r"required: \{embed,classify,verify\}"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_every_error_is_one_line_naming_flag_and_value(exported, photos, case):  # noqa: F811
    arguments, expected = ERRORS[case]
    result = _cli(*(a.format(d=exported, p=photos) for a in arguments))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clip-edge: error: "), result.stderr[-2000:]
    assert re.search(expected, lines[0]), lines[0]
    assert not os.path.exists(photos / "x.npy")


def test_all_unreadable_images_in_a_folder_is_an_error(exported, tmp_path):  # noqa: F811
    (tmp_path / "bad.png").write_text("not a PNG")
    result = _cli("classify", exported, tmp_path, "--labels", "cat", "dog")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert re.search(r"IMAGE \S+: none of the images could be read; skipped 1 .*bad\.png", result.stderr)


@pytest.mark.parametrize("command", [None, "classify"])
def test_help_shows_defaults_and_an_example(command):
    result = _cli(*([command] if command else []), "--help")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines at the terminal width
    assert "(default: fp32)" in text and "(default: 16)" in text and "(default: auto)" in text
    assert re.search(r"examples?:\n  clip-edge " + (command or ""), result.stdout), result.stdout


NOISY_COMMAND = """
import os, sys
from clip_edge import cli

def noisy(args, load):
    load(args)
    os.write(2, b"native INFO line\\n")  # what LiteRT's C++ does when it loads a model
    print("python warning", file=sys.stderr)

cli.COMMANDS["verify"] = noisy
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_native_logs_only_with_verbose(exported, verbose):  # noqa: F811
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["PYTHONPATH"] = EXPORT_ROOT
    result = subprocess.run([sys.executable, "-c", NOISY_COMMAND, "verify", exported]
                            + (["--verbose"] if verbose else []),
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    if verbose:
        assert "native INFO line\n" in result.stderr and "python warning\n" in result.stderr, result.stderr
    else:
        assert result.stderr == "python warning\n"


def test_one_label_warns_after_the_results(exported, photos):  # noqa: F811
    result = _cli("classify", exported, photos / "photos" / "a.png", "--labels", "cat")
    assert result.returncode == 0 and result.stdout.split() == [str(photos / "photos" / "a.png"), "cat", "1.0000"]
    assert result.stderr == "clip-edge: warning: one label ('cat'): its probability is always 1; give two or more.\n"
