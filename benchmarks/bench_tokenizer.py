"""Tokenizer throughput (texts/s): keras_clip.CLIPTokenizer vs open_clip.tokenize.

Both run in one process on the same texts (the 6,020-string parity corpus,
tests/golden/tokenizer_corpus.json.gz, and a set of short COCO-style captions),
in batches of 1 and of 256; ids are checked to be identical first. open_clip
lives in the reference environment, so run it there; keras_clip's tokenizer
module is loaded from its file, which needs only numpy, ftfy, regex and
tokenizers (no keras):

    /work/refenv/bin/python benchmarks/bench_tokenizer.py

With `--ours-only` it runs without open_clip (any environment with keras_clip's
dependencies).
"""

import argparse
import gzip
import importlib.util
import json
import os
import platform
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_ours():
    path = os.path.join(ROOT, "keras_clip", "tokenizer.py")
    spec = importlib.util.spec_from_file_location("keras_clip_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CLIPTokenizer()


def texts():
    with open(os.path.join(ROOT, "tests", "golden", "tokenizer_corpus.json.gz"), "rb") as f:
        corpus = json.loads(gzip.decompress(f.read()))
    rng = np.random.default_rng(0)
    nouns = ["dog", "cat", "man", "woman", "bus", "pizza", "surfboard", "kitchen", "giraffe", "bench"]
    verbs = ["sitting on", "riding", "next to", "eating", "in front of", "holding", "near"]
    captions = [
        f"A {rng.choice(nouns)} {rng.choice(verbs)} a {rng.choice(nouns)} in the {rng.choice(nouns)}."
        for _ in range(5000)
    ]
    return {"parity corpus (6,020 varied)": corpus, "short captions (5,000)": captions}


def throughput(fn, data, batch, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(data), batch):
            fn(data[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return len(data) / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours-only", action="store_true")
    args = parser.parse_args()
    ours = load_ours()
    runners = {"keras_clip.CLIPTokenizer": lambda batch: ours(batch)}
    if not args.ours_only:
        import open_clip

        runners[f"open_clip {open_clip.__version__} tokenize"] = lambda batch: open_clip.tokenize(batch).numpy()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"| texts | batch | {' | '.join(runners)} |")
    print(f"|---|---|{'---|' * len(runners)}")
    for name, data in texts().items():
        if not args.ours_only:  # same ids, or the comparison means nothing
            a, b = (fn(data) for fn in runners.values())
            assert np.array_equal(np.asarray(a, np.int64), np.asarray(b, np.int64)), "ids differ"
        for batch in (1, 256):
            rates = [throughput(fn, data, batch) for fn in runners.values()]
            print(f"| {name} | {batch} | {' | '.join(f'{r:,.0f} texts/s' for r in rates)} |")


if __name__ == "__main__":
    main()
