"""text_tokenizer.onnx (keras_clip.export.tokenizer_graph) against CLIPTokenizer."""

import gzip
import json
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime_extensions")

import keras_clip
from keras_clip.export.tokenizer_graph import (
    export_tokenizer_graph,
    tokenizer_session,
)

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = export_tokenizer_graph(str(tmp_path_factory.mktemp("tok") / "text_tokenizer.onnx"))
    return tokenizer_session(path)


@pytest.fixture(scope="module")
def reference():
    return keras_clip.CLIPTokenizer()


def _run(session, texts):
    return session.run(None, {"texts": np.array(texts, dtype=object)})[0]


def test_corpus_agreement(session):
    with open(os.path.join(GOLDEN, "tokenizer_corpus.json.gz"), "rb") as f:
        corpus = json.loads(gzip.decompress(f.read()))
    ref = np.load(os.path.join(GOLDEN, "tokenizer_ids.npz"))["ids"]
    ids = _run(session, corpus)
    assert ids.dtype == np.int32 and ids.shape == (len(corpus), 77)
    agreement = float((ids == ref).all(axis=1).mean())
    # Measured: 5,984 / 6,020 rows (99.40%); the rest by category in export/README.md.
    assert agreement >= 0.994, agreement


def test_truncation_keeps_end_token_last(session, reference):
    texts = ["cat " * 200, "1 2 3 " * 40]
    ids = _run(session, texts)
    assert ids[:, -1].tolist() == [49407, 49407]
    np.testing.assert_array_equal(ids, reference(texts))


def test_zero_padding(session):
    ids = _run(session, ["a photo of a cat", "a"])
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert ids[1, :3].tolist() == [49406, 320, 49407]
    assert not ids[0, 7:].any() and not ids[1, 3:].any()


@pytest.mark.parametrize("text", [
    "Don\u2019t say \u201chello\u201d",       # curly quotes
    "a \ufb01sh on a \ufb02oor",               # ligatures
    "\uff26\uff35\uff2c\uff2c\u3000\uff54\uff45\uff58\uff54 \uff11\uff12\uff13",  # full width
    "fish &amp; chips &amp;lt;3",              # HTML entities, twice
    "\uff76\uff80\uff76\uff85 \uff8a\uff9e",   # half-width katakana
    "the year 1970 and \u0661\u0662\u0663",    # one word per digit
    "it 's the cat's <end_of_text> toy",       # contractions, special token
    "caf\u00c3\u00a9 and caf\u00c3\u0192\u00c2\u00a9",  # UTF-8 read as windows-1252, once and twice
    "a\x00b &#xD83D; 'ſ <ſtart_of_text>",    # NUL, surrogate entity, the fold of ſ
    "\u0130STANBUL \u03a9MEGA \u0411\u041e\u0420\u0429",  # lowercase beyond Latin-1
    ">>> 'this, (don 't) \u20ac 'll x 're",  # contraction after punctuation and a space
])
def test_non_ascii_equals_reference(session, reference, text):
    np.testing.assert_array_equal(_run(session, [text]), reference([text]))


@pytest.mark.parametrize("text", [
    "&#128512; &#x1F600; &#X1f600 x &#233;t&#xE9; &#0233",  # any code point, ';' optional
    "&#150; &#129; &#128; &#13;x &#0; &#x0; &#1; &#11;",    # windows-1252 table, deleted ones
    "&#xD800; &#55296; &#1114112; &#x110000; &#99999999999; &#x1234567;",  # U+FFFD
    "&#65535; &#xFDD0; &#x10FFFF; &#xffff1; &#x00000041; &#0000065;",  # non-characters, zeros
    "&#; &#x; &#xg; a&#x27;s &#38;amp; &amp;#128512;",  # not references; one pass each
])
def test_numeric_entities_equal_reference(session, reference, text):
    np.testing.assert_array_equal(_run(session, [text]), reference([text]))


@pytest.mark.parametrize("text", [
    "cafe\u0301 Vie\u0323\u0302t Nam A\u030a \u212b",      # decomposed accents composed (twice)
    "W\u0344 x\u0387y \u0374 a\u0340 \u1f71",               # singletons, then composed
    "\uf900 \u2000 e\u0308\u0301 \u0410\u0306",              # CJK compatibility, Cyrillic
    "\u304b\u3099 \u30cf\u309a o\u0328\u0304",               # kana voicing marks
])
def test_nfc_equals_reference(session, reference, text):
    np.testing.assert_array_equal(_run(session, [text]), reference([text]))


def test_empty_batch(session):
    ids = _run(session, [])
    assert ids.shape == (0, 77) and ids.dtype == np.int32


def test_context_length_checked(tmp_path):
    with pytest.raises(ValueError, match="context_length"):
        export_tokenizer_graph(str(tmp_path / "t.onnx"), context_length=1)


def test_non_utf8_fails(session):
    import onnxruntime

    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.Fail, match="UTF-8"):
        session.run(None, {"texts": np.array([b"caf\xe9"], dtype="S")})
