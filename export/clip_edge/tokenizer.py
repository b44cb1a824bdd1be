"""CLIP's byte-level BPE tokenizer in plain Python (regex + ftfy).

Gives the same ids as `keras_clip.CLIPTokenizer` (and OpenAI's `clip.tokenize`):
text is ftfy-fixed, HTML-unescaped twice, whitespace-collapsed and lowercased,
split with OpenAI's word pattern, each word byte-encoded and merged by rank;
rows are `[start] + ids + [end]`, truncated to the context with the end token
kept last, zero-padded.

Example:
    >>> tok = Tokenizer("export/bpe_simple_vocab_16e6.txt.gz")  # doctest: +SKIP
    >>> tok(["a photo of a cat"])[0, :7].tolist()  # doctest: +SKIP
    [49406, 320, 1125, 539, 320, 2368, 49407]
"""

import functools
import gzip
import html

import numpy as np
import regex

START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
NUM_MERGES = 49152 - 256 - 2

WORD_PATTERN = regex.compile(
    START_TOKEN + "|" + END_TOKEN
    + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def byte_table():
    """GPT-2's reversible byte -> printable-character table, and the vocabulary order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    order = printable + [b for b in range(256) if b not in printable]
    return table, order


def clean(text):
    """ftfy fix, HTML unescape (twice), collapse whitespace, lowercase."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # pragma: no cover - ftfy is a dependency; ids differ only on mojibake
        pass
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


class Tokenizer:
    """Text -> int32 `(B, context_length)` token ids.

    Args:
        vocabulary: path of `bpe_simple_vocab_16e6.txt.gz`.
        context_length: row length (77 for every OpenAI CLIP).
    """

    def __init__(self, vocabulary, context_length=77):
        with gzip.open(vocabulary, "rt", encoding="utf-8") as file:
            lines = file.read().split("\n")[1 : NUM_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        self.byte_symbol, order = byte_table()
        base = [self.byte_symbol[b] for b in order]
        tokens = base + [s + "</w>" for s in base] + ["".join(m) for m in merges]
        tokens += [START_TOKEN, END_TOKEN]
        self.encoder = {token: index for index, token in enumerate(tokens)}
        self.ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.start_id = self.encoder[START_TOKEN]
        self.end_id = self.encoder[END_TOKEN]
        self.context_length = context_length
        self._bpe = functools.lru_cache(maxsize=65536)(self._bpe_uncached)

    def _bpe_uncached(self, word):
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = {(symbols[i], symbols[i + 1]) for i in range(len(symbols) - 1)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(self.encoder[s] for s in symbols)

    def encode(self, text):
        """Ids of one text, without start/end tokens."""
        ids = []
        for word in WORD_PATTERN.findall(clean(text)):
            if word == START_TOKEN:
                ids.append(self.start_id)
            elif word == END_TOKEN:
                ids.append(self.end_id)
            else:
                ids.extend(self._bpe("".join(self.byte_symbol[b] for b in word.encode("utf-8"))))
        return ids

    def __call__(self, texts):
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)):
            raise ValueError(
                f"Expected a string or a list of strings, received {type(texts).__name__}."
            )
        rows = np.zeros((len(texts), self.context_length), np.int32)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"Every caption must be a str; element {i} is {type(text).__name__}: {text!r:.60}."
                )
            ids = self.encode(text)[: self.context_length - 2]
            row = [self.start_id] + ids + [self.end_id]
            rows[i, : len(row)] = row
        return rows
