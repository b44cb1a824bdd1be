"""Regenerates tests/golden/tokenizer_ids.npz: the reference ids of the corpus.

The reference is open_clip's `tokenize` (OpenAI's tokenizer, context 77);
`decoded_json` holds its `SimpleTokenizer.decode` of every 6th row's body (ids
between the start token and the first end token), stripped. It
needs the reference environment, not keras_clip:
    /work/refenv/bin/python scripts/make_tokenizer_golden.py
(any Python with `open_clip_torch` installed). The corpus comes from
scripts/make_tokenizer_corpus.py; its SHA-256 is stored next to the ids so a
stale golden file is detected by the tests.
"""

import gzip
import hashlib
import json
import os

import numpy as np
import open_clip

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "tests", "golden")
CORPUS = os.path.join(GOLDEN, "tokenizer_corpus.json.gz")
OUT = os.path.join(GOLDEN, "tokenizer_ids.npz")
DECODE_EVERY = 6  # decoded text is kept for every 6th row (file size)


def main():
    with open(CORPUS, "rb") as f:
        raw = f.read()
    corpus = json.loads(gzip.decompress(raw).decode("ascii"))
    ids = open_clip.tokenize(corpus).numpy()
    assert ids.shape == (len(corpus), 77) and ids.max() < 2**31
    # Reference decoding of the ids between the start and the first end token.
    tokenizer = open_clip.SimpleTokenizer()
    decoded = []
    for row in ids[::DECODE_EVERY].tolist():
        body = row[1:]
        body = body[: body.index(tokenizer.eot_token_id)]
        decoded.append(tokenizer.decode(body).strip())
    np.savez_compressed(
        OUT,
        ids=ids.astype(np.int32),
        decoded_json=np.array(json.dumps(decoded, ensure_ascii=True)),
        corpus_sha256=np.array(hashlib.sha256(gzip.decompress(raw)).hexdigest()),
        reference=np.array(f"open_clip {open_clip.__version__} open_clip.tokenize"),
    )
    print(f"wrote {ids.shape} ids to {os.path.normpath(OUT)} "
          f"({(ids[:, -1] != 0).sum()} rows truncated at 77)")


if __name__ == "__main__":
    main()
