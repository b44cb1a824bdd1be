"""CLIP's byte-level BPE tokenizer in plain Python (regex + ftfy).

Gives the same ids as `keras_clip.CLIPTokenizer` (and OpenAI's `clip.tokenize`):
text is ftfy-fixed, HTML-unescaped twice, whitespace-collapsed and lowercased,
split with OpenAI's word pattern, each word byte-encoded and merged by rank;
rows are `[start] + ids + [end]`, truncated to the context with the end token
kept last, zero-padded.

Rows keep only `context_length - 2` ids, so the work per text is bounded:

- Cleaning runs on a prefix of the text cut just after a line break, doubled
  until it gives enough words. ftfy fixes each line on its own (a `<` only
  changes how later lines are fixed), HTML entities and words never span a
  line break, so the words of that prefix are the first words of the whole text.
- Words are merged by rank with a heap (n log n). Of a long word only a
  prefix is merged, K bytes short of the cut (K: the longest vocabulary
  entry): its symbols evolve as in the whole word until the last one could
  merge with the symbol after it (a vocabulary entry starting at known bytes,
  which only grows). That last symbol is then set aside, and the next one
  watched the same way. The symbols kept are provably the whole word's first
  tokens because merges only create pairs of higher rank than their parts
  (checked when the vocabulary is read; otherwise long words are merged
  whole). Too few tokens kept: the prefix doubles.

Example:
    >>> tok = Tokenizer("export/bpe_simple_vocab_16e6.txt.gz")  # doctest: +SKIP
    >>> tok(["a photo of a cat"])[0, :7].tolist()  # doctest: +SKIP
    [49406, 320, 1125, 539, 320, 2368, 49407]
"""

import functools
import gzip
import heapq
import html
import re

import numpy as np
import regex

START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
NUM_MERGES = 49152 - 256 - 2
END_OF_WORD = "</w>"
NO_RANK = float("inf")
CLEAN_CHUNK = 1 << 14  # characters of text cleaned first; doubled while words are missing

WORD_PATTERN = regex.compile(
    START_TOKEN + "|" + END_TOKEN
    + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)

# Printable ASCII, tab and newline, without '&': ftfy and HTML unescaping leave
# such text unchanged, so they are skipped (as in keras_clip.tokenizer).
PLAIN_ASCII = re.compile(r"[\t\n\x20-\x25\x27-\x7e]*")


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
    if not (text.isascii() and PLAIN_ASCII.fullmatch(text)):
        try:
            import ftfy

            text = ftfy.fix_text(text)
        except ImportError:  # pragma: no cover - ftfy is a dependency; ids differ only on mojibake
            pass
        text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def words(text):
    """The words of `clean(text)`, lazily: cleans only as much of `text` as is read.

    Example:
        >>> list(words("A photo\\nof &amp; cat"))
        ['a', 'photo', 'of', '&', 'cat']
    """
    done, size = 0, CLEAN_CHUNK
    while True:
        end = text.find("\n", size) + 1 if size < len(text) else 0
        count = 0
        for count, match in enumerate(WORD_PATTERN.finditer(clean(text[:end] if end else text)), 1):
            if count > done:
                yield match.group()
        if not end:
            return
        done, size = count, 2 * end


def _merges_only_raise_rank(merges):
    """True when every merge's parts were made by lower-ranked merges (or are bytes)."""
    made_at = {}
    for rank, (left, right) in enumerate(merges):
        if made_at.get(left, -1) >= rank or made_at.get(right, -1) >= rank:
            return False
        made_at.setdefault(left + right, rank)
    return True



def check_texts(texts):
    """`texts` as a list of str (a single str becomes a one-item list), else a one-line ValueError."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"Expected a string or a list of strings, received {type(texts).__name__}.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"Every caption must be a str; element {index} is {type(text).__name__}: {text!r:.60}."
            )
    return list(texts)

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
        byte_symbol, order = byte_table()
        base = [byte_symbol[b] for b in order]
        tokens = base + [s + END_OF_WORD for s in base] + ["".join(m) for m in merges]
        tokens += [START_TOKEN, END_TOKEN]
        self.encoder = {token: index for index, token in enumerate(tokens)}
        self.ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.start_id = self.encoder[START_TOKEN]
        self.end_id = self.encoder[END_TOKEN]
        self.context_length = context_length
        self.longest = max(len(token) for token in tokens)
        self.can_cut = _merges_only_raise_rank(merges)
        self._byte_symbols = str.maketrans({chr(b): s for b, s in byte_symbol.items()})
        self._short_word_ids = functools.lru_cache(maxsize=65536)(self._whole_word_ids)

    def _symbols(self, word):
        """The word's UTF-8 bytes as vocabulary symbols, one character each."""
        return word.encode("utf-8").decode("latin-1").translate(self._byte_symbols)

    def _whole_word_ids(self, word):
        return tuple(self.encoder[s] for s in self._merge(self._symbols(word)))

    def _word_ids(self, word, limit=None):
        """Ids of one word; with `limit`, at least its first `limit` ids (all when fewer)."""
        if len(word) <= 64:
            return self._short_word_ids(word)
        size = (limit + 2) * self.longest if limit else len(word)
        while self.can_cut and len(word) > size + self.longest:  # more bytes than the cut
            text = self._symbols(word[: size + self.longest])[: size + self.longest]
            symbols = self._merge(text, cut=True)
            if len(symbols) >= limit:
                return [self.encoder[s] for s in symbols]
            size *= 2
        return self._whole_word_ids(word)

    def _merge(self, text, cut=False):
        """Merges the symbols of `text` (a word) by rank; returns the final symbols.

        With `cut`, `text` is only the start of the word: returns the symbols
        that are final whatever follows (see the module docstring).
        """
        ranks, size = self.ranks, len(text) - self.longest if cut else len(text)
        symbols = list(text[:size])
        if not cut:
            symbols[-1] += END_OF_WORD
        following, preceding = list(range(1, size)) + [-1], list(range(-1, size - 1))
        heap = [(ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
        heapq.heapify(heap)
        last, end, rank, shortest = size - 1, size, -1, 1  # see _risk
        risk = self._risk(text, symbols[last], end, rank, shortest) if cut else NO_RANK
        while heap or risk < NO_RANK:
            if risk < (heap[0][0] if heap else NO_RANK):  # may merge with what follows first
                shortest = len(symbols[last])
                rank, end, last = risk, end - shortest, preceding[last]
                if last < 0:
                    return []
                following[last] = -1
                risk = self._risk(text, symbols[last], end, rank, shortest)
                continue
            rank, i = heapq.heappop(heap)
            j = following[i]
            if symbols[i] is None or j < 0 or ranks.get((symbols[i], symbols[j])) != rank:
                continue  # stale entry
            symbols[i], symbols[j], following[i] = symbols[i] + symbols[j], None, following[j]
            if following[i] >= 0:
                preceding[following[i]] = i
            for a, b in ((preceding[i], i), (i, following[i])):
                if a >= 0 and b >= 0 and (symbols[a], symbols[b]) in ranks:
                    heapq.heappush(heap, (ranks[symbols[a], symbols[b]], a))
            if j == last:
                last = i
                risk = self._risk(text, symbols[i], end, rank, shortest) if cut else NO_RANK
        return [s for s in symbols[: last + 1] if s is not None]

    def _risk(self, text, symbol, end, rank, shortest):
        """Lowest rank >= `rank` at which `symbol` could merge with the next one.

        The next symbol starts at `text[end]`; it was `shortest` long when it
        was set aside and can only have grown since (merges to its right).
        """
        found = (self.ranks.get((symbol, text[end : end + k])) for k in range(shortest, self.longest + 1))
        return min((r for r in found if r is not None and r >= rank), default=NO_RANK)

    def encode(self, text, limit=None):
        """Ids of one text, without start/end tokens; with `limit`, only the first `limit`.

        Example:
            >>> tok.encode("a photo of a cat")  # doctest: +SKIP
            [320, 1125, 539, 320, 2368]
        """
        ids = []
        for word in words(text) if limit is None or limit > 0 else ():
            if word == START_TOKEN:
                ids.append(self.start_id)
            elif word == END_TOKEN:
                ids.append(self.end_id)
            else:
                ids.extend(self._word_ids(word, None if limit is None else limit - len(ids)))
            if limit is not None and len(ids) >= limit:
                return ids[:limit]
        return ids

    def __call__(self, texts):
        texts = check_texts(texts)
        rows = np.zeros((len(texts), self.context_length), np.int32)
        for i, text in enumerate(texts):
            row = [self.start_id] + self.encode(text, self.context_length - 2) + [self.end_id]
            rows[i, : len(row)] = row
        return rows
