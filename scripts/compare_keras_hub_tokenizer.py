"""Counts corpus rows where keras-hub's in-graph CLIPTokenizer differs from OpenAI's.

Why keras_clip does not use keras-hub's tokenizer in graph mode: built on the
same vocabulary, it skips ftfy and HTML unescaping and splits words with its
own pattern. Measured with keras-hub 0.32: 1,283 of the 6,020 parity-corpus
rows differ from open_clip's ids (curly quotes, full-width forms, HTML
entities, ...). Needs TensorFlow and keras-hub:

    KERAS_BACKEND=tensorflow python scripts/compare_keras_hub_tokenizer.py
"""

import gzip
import json
import os

import keras_hub
import numpy as np

from keras_clip.tokenizer import _NUM_MERGES, CLIPTokenizer

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")


def main():
    ours = CLIPTokenizer()
    vocab = {token: i for i, token in enumerate(ours.id_to_token)}
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")  # keras-hub's names
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    with gzip.open(ours.vocabulary, "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1 : _NUM_MERGES + 1]
    theirs = keras_hub.tokenizers.CLIPTokenizer(vocabulary=vocab, merges=merges)
    with open(os.path.join(GOLDEN, "tokenizer_corpus.json.gz"), "rb") as f:
        corpus = json.loads(gzip.decompress(f.read()))
    reference = np.load(os.path.join(GOLDEN, "tokenizer_ids.npz"))["ids"]
    differ = []
    for i, ids in enumerate(theirs(corpus)):
        body = [t for t in np.asarray(ids).tolist() if t not in (49406, 49407)]
        row = ([49406] + body + [49407])[:77]
        row[-1] = 49407
        padded = np.zeros(77, np.int64)
        padded[: len(row)] = row
        if not np.array_equal(padded, reference[i]):
            differ.append(i)
    ours_differ = int((ours(corpus) != reference).any(axis=1).sum())
    print(f"keras-hub {keras_hub.__version__}: {len(differ)} of {len(corpus)} rows differ; "
          f"keras_clip: {ours_differ}")
    for i in differ[:5]:
        print(f"  {corpus[i][:60]!r}")


if __name__ == "__main__":
    main()
