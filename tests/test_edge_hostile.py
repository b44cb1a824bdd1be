"""Hostile and careless input to the edge runtime `clip_edge` (issue 10: defects 4, 6,
7 and 10): huge captions, manifests that point outside their folder or lack
fields, `clip-edge` failures, empty batches."""

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from keras_clip.export.manifest import file_entries
from keras_clip.tokenizer import DEFAULT_VOCABULARY, CLIPTokenizer
from tests.edge_folders import copy_folder, edit_manifest
from tests.test_edge import EXPORT_ROOT

if EXPORT_ROOT not in sys.path:
    sys.path.insert(0, EXPORT_ROOT)

from clip_edge import ClipEdge
from clip_edge.tokenizer import Tokenizer


EMBED_DIM, IMAGE_SIZE = 8, 16


@pytest.fixture(scope="module")
def edge_tokenizer():
    return Tokenizer(DEFAULT_VOCABULARY)


def _tower(path, name, shape, elem_type, reduce):
    """A stand-in tower: the input reduced to `(batch, k)` by `reduce`, projected to EMBED_DIM."""
    from onnx import TensorProto, helper, numpy_helper, save

    k = 3 if name == "images" else shape[-1]
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(k, EMBED_DIM)).astype(np.float32), "w")
    nodes = [helper.make_node("Cast", [name], ["x"], to=TensorProto.FLOAT), *reduce,
             helper.make_node("MatMul", ["pooled", "w"], ["embeddings"]),
             helper.make_node("LpNormalization", ["embeddings"], ["normalized_embeddings"], axis=-1, p=2)]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", EMBED_DIM])
               for o in ("embeddings", "normalized_embeddings")]
    graph = helper.make_graph(nodes, "tower", [helper.make_tensor_value_info(name, elem_type, shape)],
                              outputs, [weight])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A folder shaped like `keras-clip export`'s, with tiny stand-in ONNX towers (built in ms).

    The real export is covered by tests/test_edge.py; these tests attack the folder.
    """
    from onnx import TensorProto, helper

    folder = tmp_path_factory.mktemp("hostile") / "export"
    folder.mkdir()
    pool = helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[1, 2], keepdims=0)
    _tower(str(folder / "image_encoder.onnx"), "images", ["batch", IMAGE_SIZE, IMAGE_SIZE, 3],
           TensorProto.FLOAT, [pool])
    _tower(str(folder / "text_encoder.onnx"), "token_ids", ["batch", 77], TensorProto.INT32,
           [helper.make_node("Identity", ["x"], ["pooled"])])
    shutil.copyfile(DEFAULT_VOCABULARY, folder / "bpe_simple_vocab_16e6.txt.gz")
    names = ["image_encoder.onnx", "text_encoder.onnx", "bpe_simple_vocab_16e6.txt.gz"]
    manifest = {
        "format_version": 1, "embed_dim": EMBED_DIM, "logit_scale": 100.0,
        "image": {"size": IMAGE_SIZE, "mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28]},
        "text": {"context_length": 77, "vocabulary": names[2]},
        "onnx": {"image_encoder": {"fp32": names[0]}, "text_encoder": {"fp32": names[1]}},
        "files": file_entries(str(folder), names),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder)


# ------------------------------------------------------------- tokenizer (4)
def _letters(n, alphabet, seed):
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed_megabyte():
    pieces = ["Café", "&amp;", "中文字符", "“quoted”", "naïve", "<b>bold</b>", "ＦＵＬＬ１２３", "x" * 300,
              "don't", "3.14", "\t", "\n", "  ", "&#39;", "résumé", "e\u0301", "\u00e2\u20ac\u0153moji"]
    rng = random.Random(7)
    text, size = [], 0
    while size < 1 << 20:
        text.append(rng.choice(pieces))
        size += len(text[-1]) + 1
    return " ".join(text)


LONG_INPUTS = {
    "20k_letter_word": _letters(20000, "abcdefghijklmnopqrstuvwxyz", 0),
    "repeated_word": "hello" * 6000,
    "repeated_pair": "ex" * 10000,
    "one_letter": "a" * 20001,
    "short_words_then_long_word": "cat " * 70 + _letters(9000, "aeioust", 1),
    "cjk_run": "中文字符日本語" * 3000,
    "punctuation_run": "!?.,;:-_" * 2500,
    "whitespace_runs": "a" + " " * 200000 + "b\t\t" + "\n" * 50000 + "c",
    "mixed_1mb": _mixed_megabyte(),
}


@pytest.mark.parametrize("name", sorted(LONG_INPUTS))
def test_edge_tokenizer_matches_reference_on_long_inputs(edge_tokenizer, name):
    text = LONG_INPUTS[name]
    np.testing.assert_array_equal(edge_tokenizer([text]), CLIPTokenizer()([text]))


def test_cut_long_word_gives_the_whole_words_first_tokens(edge_tokenizer):
    rng = random.Random(3)
    alphabets = ["abcdefghijklmnopqrstuvwxyz", "aeiou", "ab", "thequickbrownfox", "中文字符", "éàü!?"]
    for trial in range(40):
        unit = _letters(rng.randint(1, 30), rng.choice(alphabets), trial)
        word = (unit * (3000 // len(unit) + 1))[:3000] if trial % 2 else _letters(3000, unit, trial)
        whole = list(edge_tokenizer._whole_word_ids(word))
        for limit in (1, 7, 75):
            assert list(edge_tokenizer._word_ids(word, limit))[:limit] == whole[:limit], (word[:40], limit)


def test_megabyte_caption_is_tokenized_quickly(edge_tokenizer):
    # Before the fix one 16k-letter word took 12 s (quadratic merges); measured
    # now: ~0.03 s for a 1 MB word, ~0.15 s for 1 MB of mixed lines.
    for text in ("a" * (1 << 20), _letters(1 << 20, "abcdefghijklmnopqrstuvwxyz", 2),
                 (LONG_INPUTS["mixed_1mb"] + "\n") * 2):
        start = time.perf_counter()
        ids = edge_tokenizer([text])
        assert time.perf_counter() - start < 5.0
        assert ids[0, -1] == edge_tokenizer.end_id


# ------------------------------------------------------------- manifest (6)
def _point_outside(copy, field, name):
    """Moves `name` out of the folder and makes the manifest (or a symlink) point at it."""
    outside = copy.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.move(str(copy / name), str(outside / name))

    def edit(manifest):
        entry = manifest["files"].pop(name)
        target = {"relative": f"../outside/{name}", "absolute": str(outside / name)}.get(field)
        if target is None:  # a symlink inside the folder
            os.symlink(outside / name, copy / name)
            target = name
        manifest["files"][target] = entry
        if name.endswith(".onnx"):
            manifest["onnx"]["image_encoder"]["fp32"] = target
        else:
            manifest["text"]["vocabulary"] = target

    edit_manifest(copy, edit)


@pytest.mark.parametrize(
    "field, name, verify",
    [("relative", "image_encoder.onnx", True), ("absolute", "image_encoder.onnx", True),
     ("relative", "bpe_simple_vocab_16e6.txt.gz", True), ("symlink", "image_encoder.onnx", True),
     ("symlink", "bpe_simple_vocab_16e6.txt.gz", False), ("absolute", "image_encoder.onnx", False)],
)
def test_manifest_paths_outside_the_folder_are_refused(exported, tmp_path, field, name, verify):
    copy = copy_folder(exported, tmp_path)
    _point_outside(copy, field, name)
    with pytest.raises(ValueError, match="outside the export folder|must be a relative path"):
        ClipEdge(copy, verify=verify)


@pytest.mark.parametrize(
    "edit, match",
    [(lambda m: m.pop("text"), "text.context_length must be"),
     (lambda m: m["text"].pop("vocabulary"), "text.vocabulary must be"),
     (lambda m: m.pop("files"), "files must be a dict"),
     (lambda m: m["files"]["text_encoder.onnx"].pop("sha256"), r"files\['text_encoder.onnx'\].sha256"),
     (lambda m: m.update(logit_scale=math.nan), "logit_scale must be a finite positive number"),
     (lambda m: m.update(logit_scale=math.inf), "logit_scale must be a finite positive number"),
     (lambda m: m.update(logit_scale="100"), "logit_scale must be a number"),
     (lambda m: m["image"].update(std=[0.2, 0.0, 0.2]), "image.std must be positive")],
)
def test_incomplete_manifest_is_a_clear_error(exported, tmp_path, edit, match):
    copy = copy_folder(exported, tmp_path)
    edit_manifest(copy, edit)
    with pytest.raises(ValueError, match=match):
        ClipEdge(copy)


# ---------------------------------------------------------- empty batches (10)
def test_empty_batches_give_empty_embeddings(exported):
    edge = ClipEdge(exported)
    size = edge.image_size
    for empty in (edge.encode_texts([]), edge.encode_texts([], normalized=True), edge.encode_images([]),
                  edge.encode_pixels(np.zeros((0, size, size, 3), np.float32))):
        assert empty.shape == (0, EMBED_DIM) and empty.dtype == np.float32
    assert edge.similarity([], ["a cat"]).shape == (0, 1)
    assert edge.zero_shot([], ["cat", "dog"]).shape == (0, 2)


@pytest.mark.parametrize("template", ["a {} {}", "{x} of a {}", "a {", "a {0}}", "no field", 3])
def test_bad_template_is_a_clear_error(exported, template):
    with pytest.raises(ValueError, match="exactly one"):
        ClipEdge(exported).class_embeddings(["cat"], [template])


# ------------------------------------------------------------------ CLI (7)
def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = EXPORT_ROOT
    return subprocess.run([sys.executable, "-m", "clip_edge", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _tamper(copy):
    with open(copy / "text_encoder.onnx", "r+b") as file:
        file.seek(200)
        byte = file.read(1)
        file.seek(200)
        file.write(bytes([byte[0] ^ 1]))


def _bad_json(copy):
    (copy / "manifest.json").write_text("{")


EMBED_TEXTS = "embed {d} --texts {t}/c.txt --out {t}/o.npy"
CLASSIFY = "classify {d} {t}/a.png --labels cat"
CLI_CASES = {  # name: (prepare the export copy, arguments, what the error line names)
    "missing_folder": (None, "embed {t}/nowhere --texts {t}/c.txt --out {t}/o.npy", "nowhere"),
    "no_manifest": (None, "embed {t} --texts {t}/c.txt --out {t}/o.npy", "No manifest.json"),
    "tampered_model": (_tamper, EMBED_TEXTS, "SHA-256 mismatch for .*text_encoder.onnx"),
    "bad_manifest_json": (_bad_json, CLASSIFY, "manifest.json is not valid JSON"),
    "manifest_outside_path": (lambda d: _point_outside(d, "relative", "image_encoder.onnx"), CLASSIFY,
                              "outside the export folder"),
    "missing_image": (None, "classify {d} {t}/missing.png --labels cat", "missing.png"),
    "text_as_image": (None, "embed {d} --images {t}/c.txt --out {t}/o.npy", "--images .*c.txt"),
    "empty_labels": (None, "classify {d} {t}/a.png --labels ,", "--labels"),
    "template_without_braces": (None, CLASSIFY + " --template x", "template"),
    "batch_size_zero": (None, "--batch-size 0 " + EMBED_TEXTS, "--batch-size"),
    "binary_texts": (None, "embed {d} --texts {t}/a.png --out {t}/o.npy", "--texts .*a.png"),
    "missing_texts": (None, "embed {d} --texts {t}/none.txt --out {t}/o.npy", "none.txt"),
    "out_in_missing_folder": (None, "embed {d} --texts {t}/c.txt --out {t}/no/o.npy", "--out"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input_is_one_line_and_exit_2(exported, tmp_path, case):
    copy = copy_folder(exported, tmp_path)
    (tmp_path / "c.txt").write_text("a photo of a cat\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    prepare, arguments, expected = CLI_CASES[case]
    if prepare:
        prepare(copy)
    result = _cli(*arguments.format(d=copy, t=tmp_path).split())
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clip-edge: error: "), result.stderr[-2000:]
    assert re.search(expected, lines[0]), lines[0]
