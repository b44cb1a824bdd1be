"""CLIP's byte-level BPE tokenizer, with ids identical to OpenAI's / open_clip's.

Design (why it is built this way):

- Eager use needs no TensorFlow, so it works unchanged under the jax and torch
  backends. Text cleaning (`ftfy.fix_text`, `html.unescape` twice, whitespace
  collapse, lowercase) and the split into words run in Python with the same
  `regex` pattern as the reference, so word boundaries (Unicode letter / number
  classes, the case-insensitive `'s|'t|...` contractions, the literal special
  tokens) cannot drift from it. The byte-to-unicode mapping and the BPE merges of
  each word run in the Rust `tokenizers` library (a `BPE` model built from the
  bundled `bpe_simple_vocab_16e6.txt.gz`, `</w>` end-of-word suffix), which is
  what makes it fast.
- Inside a `tf.data` pipeline (graph mode) the same eager code runs through
  `tf.numpy_function`. keras-hub's in-graph `CLIPTokenizer` was not used: it does
  not run ftfy or HTML unescaping and splits words with its own pattern; built
  on the same vocabulary (keras-hub 0.32) it differs from OpenAI's ids on
  1,283 of the 6,020 parity-corpus strings (curly quotes, full-width forms,
  HTML entities, CJK punctuation; scripts/compare_keras_hub_tokenizer.py).
  Exact ids were preferred over a pure-graph tokenizer; the price is that the
  tokenizer cannot be saved inside a SavedModel.
- Plain ASCII text (printable, tab, newline, no `&`) skips ftfy and HTML
  unescaping, which leave it unchanged (fuzz-tested); ftfy is most of the
  cost of tokenizing a short caption.
- Special tokens follow open_clip (the reference of the parity tests):
  `<start_of_text>` = 49406 and `<end_of_text>` = 49407, and those literal
  strings inside a caption become the special ids, as in open_clip. (OpenAI's
  original tokenizer names them `<|startoftext|>` / `<|endoftext|>`, so the
  two references differ on captions that contain these literal strings.)
  Rows are `[start] + ids + [end]`, zero-padded to 77; longer rows are
  truncated to 77 with the end token kept last.
"""

import gzip
import html
import os
import re

import ftfy
import numpy as np
import regex

from keras_clip.backend_utils import is_tf_tensor

CONTEXT_LENGTH = 77
START_TOKEN_ID = 49406  # ids of the special tokens in the bundled vocabulary
END_TOKEN_ID = 49407
START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
_NUM_MERGES = 49152 - 256 - 2  # merge lines used by OpenAI's vocabulary

_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
DEFAULT_VOCABULARY = os.path.join(_ASSETS, "bpe_simple_vocab_16e6.txt.gz")

# Words: the special tokens, English contractions, letter runs, single digits,
# runs of anything else that is not whitespace (OpenAI's pattern).
_WORD_PATTERN = regex.compile(
    "|".join([START_TOKEN, END_TOKEN])
    + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def _byte_symbols():
    """GPT-2's byte table: (symbol of each byte 0..255, bytes in vocabulary order).

    Printable Latin-1 bytes stand for themselves; the other bytes are mapped to
    chr(256 + k). The vocabulary lists the printable bytes first.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    order = printable + [b for b in range(256) if b not in printable]
    return [table[b] for b in range(256)], order


# Printable ASCII, tab and newline, without '&': text that ftfy and HTML
# unescaping leave unchanged, so they are skipped (ftfy is most of the cost).
_PLAIN_ASCII = re.compile(r"[\t\n\x20-\x25\x27-\x7e]*")


def clean_text(text):
    """OpenAI's cleaning: ftfy, HTML-unescape twice, collapse whitespace, lowercase.

    Example:
        >>> clean_text("  A &amp;amp; B\\n")
        'a & b'
    """
    if not (text.isascii() and _PLAIN_ASCII.fullmatch(text)):
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def _decode_utf8(data, index):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"CLIPTokenizer expects UTF-8 text; caption {index} has an invalid byte "
            f"{data[error.start]:#04x} at position {error.start} ({error.reason}). Decode "
            "it yourself, e.g. data.decode('utf-8', errors='replace')."
        ) from None


def _as_text_list(texts):
    """Validates eager input; returns (list of str, was_single)."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
        single = True
    elif isinstance(texts, np.ndarray) and texts.ndim == 0:
        texts = [texts.item()]
        single = True
    elif isinstance(texts, (list, tuple, np.ndarray)):
        if isinstance(texts, np.ndarray) and texts.ndim != 1:
            raise ValueError(
                "CLIPTokenizer expects a string or a 1-D list/array of strings; "
                f"received an array of shape {texts.shape}."
            )
        texts = list(texts)
        single = False
    else:
        raise ValueError(
            "CLIPTokenizer expects a string or a list of strings; "
            f"received {type(texts).__name__}: {texts!r:.80}."
        )
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, (bytes, np.bytes_)):
            t = _decode_utf8(bytes(t), i)
        elif isinstance(t, np.str_):
            t = str(t)
        if not isinstance(t, str):
            raise ValueError(
                f"CLIPTokenizer expects every caption to be a string; element {i} "
                f"is {type(t).__name__}: {t!r:.80}."
            )
        out.append(t)
    return out, single


class CLIPTokenizer:
    """OpenAI CLIP tokenizer on the bundled vocabulary; ids as int32 `(B, 77)`.

    Eager input (a str, or a list / 1-D array of str or bytes) returns a numpy
    int32 array `(B, 77)` (`(1, 77)` for one str, as `clip.tokenize`); a
    `tf.string` tensor (eager or inside `tf.data.Dataset.map`) returns
    an int32 tf tensor, `(B, 77)` for a vector and `(77,)` for a scalar.

    Args:
        vocabulary: path of a `bpe_simple_vocab_16e6.txt.gz`-format file;
            defaults to the bundled one.
        context_length: row length, 77 for every OpenAI model.

    Example:
        >>> tokenizer = CLIPTokenizer()
        >>> ids = tokenizer(["a photo of a cat"])
        >>> ids.shape, ids[0, :7].tolist()
        ((1, 77), [49406, 320, 1125, 539, 320, 2368, 49407])
        >>> tokenizer.detokenize(ids)
        ['a photo of a cat']
    """

    def __init__(self, vocabulary=None, context_length=CONTEXT_LENGTH):
        if not isinstance(context_length, int) or context_length < 2:
            raise ValueError(
                f"`context_length` must be an int >= 2; received {context_length!r}."
            )
        self.vocabulary = vocabulary or DEFAULT_VOCABULARY
        self.context_length = context_length
        self._build()

    def _build(self):
        from tokenizers import Tokenizer, models, pre_tokenizers

        with gzip.open(self.vocabulary, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        self.merge_lines = lines[1 : _NUM_MERGES + 1]  # "a b" pairs, highest priority first
        merges = [tuple(line.split()) for line in self.merge_lines]
        symbols, order = _byte_symbols()
        base = [symbols[b] for b in order]
        tokens = base + [s + "</w>" for s in base] + ["".join(m) for m in merges]
        tokens += [START_TOKEN, END_TOKEN]
        self._vocab = {t: i for i, t in enumerate(tokens)}
        self.id_to_token = tokens  # id -> token string (byte symbols, "</w>" ends a word)
        self.vocab_size = len(tokens)
        self.start_token_id = self._vocab[START_TOKEN]
        self.end_token_id = self._vocab[END_TOKEN]
        self.pad_token_id = 0
        self._specials = {START_TOKEN: self.start_token_id, END_TOKEN: self.end_token_id}
        self._byte_of_symbol = {s: b for b, s in enumerate(symbols)}

        bpe = models.BPE(
            vocab=dict(self._vocab), merges=merges, end_of_word_suffix="</w>"
        )
        self._bpe = Tokenizer(bpe)
        # Words arrive pre-split; this only maps their UTF-8 bytes to symbols.
        self._bpe.pre_tokenizer = pre_tokenizers.ByteLevel(
            add_prefix_space=False, use_regex=False
        )

    # ------------------------------------------------------------------ eager
    def _word_segments(self, text):
        """Splits cleaned text into runs of ordinary words and special ids."""
        items, run = [], []
        for word in _WORD_PATTERN.findall(clean_text(text)):
            special = self._specials.get(word)
            if special is None:
                run.append(word)
            else:
                if run:
                    items.append(run)
                    run = []
                items.append(special)
        if run:
            items.append(run)
        return items

    def token_ids(self, texts):
        """Unpadded ids (no start/end tokens) for each text, as lists of int."""
        texts, _ = _as_text_list(texts)
        per_text = [self._word_segments(t) for t in texts]
        runs = [item for items in per_text for item in items if isinstance(item, list)]
        if len(runs) == 1:  # skips encode_batch's thread-pool overhead
            encoded = iter([self._bpe.encode(runs[0], is_pretokenized=True, add_special_tokens=False)])
        else:
            encoded = iter(
                self._bpe.encode_batch(runs, is_pretokenized=True, add_special_tokens=False)
            )
        result = []
        for items in per_text:
            ids = []
            for item in items:
                if isinstance(item, list):
                    ids.extend(next(encoded).ids)
                else:
                    ids.append(item)
            result.append(ids)
        return result

    def _tokenize_numpy(self, texts):
        rows = self.token_ids(texts)
        out = np.zeros((len(rows), self.context_length), dtype=np.int32)
        for i, ids in enumerate(rows):
            row = [self.start_token_id] + ids[: self.context_length - 2] + [self.end_token_id]
            out[i, : len(row)] = row
        return out

    # ------------------------------------------------------------ tf graphs
    def _tokenize_any_shape(self, values):
        values = np.asarray(values)
        return self._tokenize_numpy(values.reshape(-1)).reshape(
            values.shape + (self.context_length,)
        )

    def _tokenize_tf(self, texts):
        import tensorflow as tf

        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string:
            raise ValueError(
                f"CLIPTokenizer expects a tf.string tensor; received dtype {texts.dtype.name}."
            )
        rank = texts.shape.rank
        if rank not in (0, 1):
            raise ValueError(
                "CLIPTokenizer expects a scalar or 1-D tf.string tensor; "
                f"received shape {texts.shape}."
            )

        # Not converted by AutoGraph: inside tf.data's map it would rewrite the
        # Python callback and break its signature.
        run = tf.autograph.experimental.do_not_convert(self._tokenize_any_shape)
        ids = tf.numpy_function(run, [texts], tf.int32, stateful=False)
        ids.set_shape(texts.shape.concatenate([self.context_length]))
        return ids

    # -------------------------------------------------------------- public
    def __call__(self, texts):
        if is_tf_tensor(texts):
            return self._tokenize_tf(texts)
        texts_list, _ = _as_text_list(texts)
        return self._tokenize_numpy(texts_list)

    def tokenize(self, texts):
        """Same as calling the tokenizer."""
        return self(texts)

    def detokenize(self, ids):
        """Ids `(B, L)` or `(L,)` back to text: one str per row (a list for 2-D).

        Start, end and padding tokens are dropped; a row stops at its end token.

        Example:
            >>> t = CLIPTokenizer()
            >>> t.detokenize(t("Hello, World!"))
            ['hello , world !']
        """
        array = np.asarray(ids)
        if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                "detokenize expects integer ids of shape (B, L) or (L,); "
                f"received dtype {array.dtype} and shape {array.shape}."
            )
        if array.ndim == 1:
            return self._decode_row(array)
        return [self._decode_row(row) for row in array]

    def _decode_row(self, row):
        row = [int(i) for i in row]
        if row and row[0] == self.start_token_id:
            row = row[1:]
        if self.end_token_id in row:
            row = row[: row.index(self.end_token_id)]
        else:
            while row and row[-1] == self.pad_token_id:
                row.pop()
        for i in row:
            if not 0 <= i < self.vocab_size:
                raise ValueError(
                    f"detokenize received id {i}; ids must be in [0, {self.vocab_size})."
                )
        # Every character of a token (specials and the `</w>` suffix included)
        # is a byte symbol; decode the bytes, then end-of-word marks become spaces.
        symbols = "".join(self.id_to_token[i] for i in row)
        data = bytes(self._byte_of_symbol[c] for c in symbols)
        return data.decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def get_config(self):
        return {"vocabulary": None if self.vocabulary == DEFAULT_VOCABULARY else self.vocabulary,
                "context_length": self.context_length}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
