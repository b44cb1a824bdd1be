"""CLIPTokenizer against OpenAI's ids (golden file from open_clip.tokenize).

Golden files: tests/golden/tokenizer_corpus.json.gz (scripts/make_tokenizer_corpus.py)
and tests/golden/tokenizer_ids.npz (scripts/make_tokenizer_golden.py, open_clip).
"""

import gzip
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_clip
from keras_clip.tokenizer import DEFAULT_VOCABULARY

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture(scope="module")
def golden():
    with open(os.path.join(GOLDEN, "tokenizer_corpus.json.gz"), "rb") as f:
        text = gzip.decompress(f.read())
    data = np.load(os.path.join(GOLDEN, "tokenizer_ids.npz"))
    assert str(data["corpus_sha256"]) == hashlib.sha256(text).hexdigest(), (
        "tokenizer_ids.npz is stale: rerun scripts/make_tokenizer_golden.py"
    )
    return json.loads(text.decode("ascii")), data["ids"], json.loads(str(data["decoded_json"]))


@pytest.fixture(scope="module")
def tokenizer():
    return keras_clip.CLIPTokenizer()


def test_bundled_vocabulary():
    assert os.path.getsize(DEFAULT_VOCABULARY) == 1356917
    with open(DEFAULT_VOCABULARY, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
    assert os.path.exists(os.path.join(os.path.dirname(DEFAULT_VOCABULARY), "LICENSE"))


def test_constants(tokenizer):
    assert tokenizer.context_length == 77
    assert tokenizer.vocab_size == 49408
    assert tokenizer.start_token_id == 49406
    assert tokenizer.end_token_id == 49407


def test_corpus_identical_to_reference(golden, tokenizer):
    corpus, ref, _ = golden
    assert len(corpus) >= 5000
    ids = tokenizer(corpus)
    assert ids.dtype == np.int32 and ids.shape == (len(corpus), 77)
    bad = np.flatnonzero((ids != ref).any(axis=1))
    assert bad.size == 0, (
        f"{bad.size}/{len(corpus)} rows differ; first: {corpus[bad[0]]!r:.120} "
        f"ours {ids[bad[0], :12].tolist()} ref {ref[bad[0], :12].tolist()}"
    )


def test_corpus_covers_required_cases(golden):
    corpus, ref, _ = golden
    assert "" in corpus and any(s and not s.strip() for s in corpus)
    assert (ref[:, -1] == 49407).sum() >= 100  # truncated rows, end token kept last
    assert any("&amp;" in s for s in corpus) and any("\u200d" in s for s in corpus)
    assert any("\t" in s for s in corpus) and any(len(s) > 2000 for s in corpus)


def test_single_string_and_truncation(tokenizer):
    ids = tokenizer("a photo of a cat")
    assert ids.shape == (1, 77)
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert not ids[0, 7:].any()
    long_ids = tokenizer(["cat " * 200])[0]
    assert long_ids[0] == 49406 and long_ids[-1] == 49407 and (long_ids[1:-1] == 2368).all()


def test_detokenize_matches_reference_decode(golden, tokenizer):
    _, ref, decoded = golden
    ours = tokenizer.detokenize(ref[::6])
    assert ours == decoded
    assert tokenizer.detokenize(ref[0]) == decoded[0]


def test_bad_inputs(tokenizer):
    for bad in (None, 5, ["a cat", None], ["ok", 3.5], [["nested"]], np.array([["a"]])):
        with pytest.raises(ValueError, match="received|element"):
            tokenizer(bad)
    with pytest.raises(ValueError, match="received"):
        tokenizer.detokenize(np.zeros((2, 3, 4), np.int32))
    with pytest.raises(ValueError, match="id 49408"):
        tokenizer.detokenize([49406, 49408, 49407])


def test_bytes_and_numpy_strings(tokenizer):
    a = tokenizer([b"a photo of a cat", np.str_("Café")])
    b = tokenizer(["a photo of a cat", "Café"])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("texts", [[b"ok", b"a \xff cat"], np.array([b"ok", b"a \xff cat"])])
def test_invalid_utf8_bytes_give_one_clear_line(tokenizer, texts):
    with pytest.raises(ValueError) as caught:
        tokenizer(texts)
    assert type(caught.value) is ValueError  # not a bare UnicodeDecodeError
    message = str(caught.value)
    assert "\n" not in message
    assert "expects UTF-8 text; caption 1 has an invalid byte 0xff at position 2" in message


def test_tf_data_graph_mode(golden, tokenizer):
    tf = pytest.importorskip("tensorflow")
    corpus, ref, _ = golden
    subset = corpus[:150] + corpus[-40:]
    expected = np.concatenate([ref[:150], ref[-40:]])
    scalars = tf.data.Dataset.from_tensor_slices(subset).map(tokenizer)
    assert scalars.element_spec.shape == (77,) and scalars.element_spec.dtype == tf.int32
    np.testing.assert_array_equal(np.stack(list(scalars.as_numpy_iterator())), expected)
    batches = tf.data.Dataset.from_tensor_slices(subset).batch(32).map(tokenizer)
    assert batches.element_spec.shape.as_list() == [None, 77]
    np.testing.assert_array_equal(np.concatenate(list(batches.as_numpy_iterator())), expected)
    with pytest.raises(ValueError, match="tf.string"):
        tokenizer(tf.constant([1, 2]))


def test_eager_use_does_not_import_tensorflow():
    code = (
        "import sys, keras_clip; t = keras_clip.CLIPTokenizer();"
        "ids = t(['a photo of a cat']); assert ids[0, 1] == 320;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import keras

    current = keras.backend.backend()
    for backend in [current if current in ("jax", "torch") else "jax"]:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=root)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]


def test_ascii_fast_path_equals_full_cleaning():
    """Plain ASCII skips ftfy/unescape; check that this changes nothing."""
    import html
    import random

    import ftfy

    from keras_clip.tokenizer import clean_text

    rng = random.Random(0)
    alphabet = [chr(c) for c in range(128)]
    words = ["cat", "Dog's", "it'll", "<b>", "&", "amp;", "\r\n", "\t", " ", "\x1b[31m", "\x00"]
    for _ in range(3000):
        if rng.random() < 0.5:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        else:
            text = "".join(rng.choice(words + alphabet) for _ in range(rng.randint(0, 12)))
        full = " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).split()).lower()
        assert clean_text(text) == full, repr(text)


def test_pickles_for_worker_processes(tokenizer):
    import pickle

    clone = pickle.loads(pickle.dumps(tokenizer))
    texts = ["a photo of a cat", "Ça va &amp; 🐈‍⬛"]
    np.testing.assert_array_equal(clone(texts), tokenizer(texts))
