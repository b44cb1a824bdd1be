"""CLIP's tokenizer in TensorFlow ops (strings -> ids), for the strings SavedModel.

`GraphTokenizer` is a `tf.Module`: `TextCleaner` (OpenAI's cleaning), OpenAI's
own word pattern (`tensorflow_text.regex_split`, RE2; its literal words
case-insensitive, so "'ſ" is a contraction as in the reference), the literal `<start_of_text>` /
`<end_of_text>` words as the special ids, and each other word through
keras-hub's in-graph byte-pair encoder on the bundled vocabulary (one word
per input, so its own GPT-2 word split never applies). Rows are packed as
OpenAI's `clip.tokenize`: start token, ids truncated to `context_length - 2`,
end token, zeros.

Example:
    >>> tokenizer = GraphTokenizer(77)
    >>> tokenizer(tf.constant(["a photo of a cat"]))[0, :7].numpy().tolist()
    [49406, 320, 1125, 539, 320, 2368, 49407]
"""

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from keras_clip.export.tf_text_cleaning import TextCleaner
from keras_clip.tokenizer import END_TOKEN, START_TOKEN, CLIPTokenizer, clean_text

# OpenAI's pattern (keras_clip.tokenizer._WORD_PATTERN) for RE2; \s is ASCII
# in RE2, which is all the whitespace left after cleaning. Case-insensitive
# only for the literal words: RE2's case-insensitive \p{L} also takes U+0345.
WORD_PATTERN = (f"(?i:{START_TOKEN}|{END_TOKEN}|'s|'t|'re|'ve|'m|'ll|'d)"
                r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")

# Words whose ids come from `CLIPTokenizer` at export time: the special tokens,
# words OpenAI's case-insensitive pattern finds through "ſ" -> "s" (keras-hub's
# split would cut them) and "६", which keras-hub uses as a marker and drops.
FIXED_WORDS = (START_TOKEN, END_TOKEN, "<\u017ftart_of_text>", "'\u017f", "\u096c")

LONG_WORD = 24  # bytes


def whole_words(reference):
    """{word: [id]} for the vocabulary's whole-word tokens that encode as themselves.

    A table lookup instead of the in-graph merge loop for most words of a caption.
    """
    ids = [i for i, token in enumerate(reference.id_to_token) if token.endswith("</w>")]
    words = reference.detokenize(np.array([[i] for i in ids]))
    usable = [(w, i) for w, i in zip(words, ids) if w and clean_text(w) == w]
    encoded = reference.token_ids([w for w, _ in usable])
    return {w: [i] for (w, i), e in zip(usable, encoded) if e == [i]}


def _byte_pair_encoder(reference):
    """keras-hub's in-graph `CLIPTokenizer` on `reference`'s vocabulary and merges."""
    from keras_hub.tokenizers import CLIPTokenizer as KerasHubCLIPTokenizer

    tokens = list(reference.id_to_token)
    tokens[reference.start_token_id] = "<|startoftext|>"  # the names keras-hub requires
    tokens[reference.end_token_id] = "<|endoftext|>"
    vocabulary = {token: index for index, token in enumerate(tokens)}
    return KerasHubCLIPTokenizer(vocabulary=vocabulary, merges=reference.merge_lines)


def _lookup_tables(obj, depth=0, seen=None):
    """The tf lookup tables inside a keras-hub tokenizer (so a tf.Module tracks them)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 4:
        return []
    seen.add(id(obj))
    if "HashTable" in type(obj).__name__:
        return [obj]
    found = []
    for value in getattr(obj, "__dict__", {}).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            found += _lookup_tables(item, depth + 1, seen)
    return found


class GraphTokenizer(tf.Module):
    """`keras_clip.CLIPTokenizer` in TF ops: `(B,)` tf.string -> `(B, L)` int32.

    Args:
        context_length: row length (77 for every OpenAI model).
    """

    def __init__(self, context_length=77):
        super().__init__()
        if not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f"`context_length` must be an int >= 2; received {context_length!r}.")
        reference = CLIPTokenizer(context_length=context_length)
        self.context_length = context_length
        self.start_id, self.end_id = reference.start_token_id, reference.end_token_id
        self.cleaner = TextCleaner()
        self._encoder = _byte_pair_encoder(reference)
        self.encoder_tables = _lookup_tables(self._encoder)
        fixed = {word: reference.token_ids([word])[0] for word in FIXED_WORDS}
        fixed.update(whole_words(reference))
        self._fixed_index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(fixed)), tf.range(1, len(fixed) + 1, dtype=tf.int64)), default_value=0)
        self._fixed_ids = tf.ragged.constant([[]] + list(fixed.values()), dtype=tf.int32)

    def words(self, texts):
        """Cleaned text split into OpenAI's words: ragged `(B, None)` tf.string."""
        # U+0345 is the one character OpenAI's case-insensitive pattern matches
        # nowhere (it folds to a letter but is none): it only separates words.
        texts = tf.strings.regex_replace(self.cleaner(texts), "\u0345", " ")
        pieces = tf_text.regex_split(texts, WORD_PATTERN, WORD_PATTERN)
        return tf.ragged.boolean_mask(pieces, tf.not_equal(pieces, " "))

    def __call__(self, texts):
        # Every word gives at least one id: later words cannot reach the row.
        words = self.words(texts)[:, : self.context_length - 2]  # (B, None)

        flat = words.flat_values
        fixed = self._fixed_index.lookup(flat)  # 0: an ordinary word
        long = tf.strings.length(flat) > LONG_WORD
        # keras-hub's merge loop runs until the longest word is done, over all
        # words of the call: long words get a call of their own. "" gives no ids.
        short_ids = self._encoder(tf.where((fixed > 0) | long, "", flat))  # (N, None)
        long_ids = self._encoder(tf.where((fixed == 0) & long, flat, ""))
        parts = [short_ids, long_ids, tf.gather(self._fixed_ids, fixed)]
        ids = tf.concat([tf.cast(part, tf.int32) for part in parts], axis=1)
        rows = tf.RaggedTensor.from_row_splits(ids, words.row_splits).merge_dims(1, 2)  # (B, None)
        rows = rows[:, : self.context_length - 2]
        batch = tf.shape(texts)[0]
        rows = tf.concat([tf.fill([batch, 1], self.start_id), rows, tf.fill([batch, 1], self.end_id)], axis=1)
        return rows.to_tensor(default_value=0, shape=[None, self.context_length])
