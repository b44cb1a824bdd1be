"""OpenAI's caption cleaning (`keras_clip.tokenizer.clean_text`) in TensorFlow ops.

`TextCleaner` is a `tf.Module` (its lookup tables travel inside a SavedModel)
that maps a `(batch,)` tf.string tensor to the cleaned text, step by step as the
reference does it:

1. Text that is not UTF-8 refused (`InvalidArgumentError`, as `CLIPTokenizer`
   raises `ValueError`); NUL deleted (the TF string ops would end a text there).
2. Rows that are not plain ASCII (printable, tab, newline, no `&`) get ftfy's
   fixes in ftfy's order; the others skip them, as in the reference:
   HTML entities (rows without `<`), UTF-8 read as windows-1252 repaired
   ("cafÃ©" -> "café", two rounds; valid sequences only), terminal escapes,
   one per-character table built from ftfy's own tables (C1 controls, Latin
   ligatures, full-width forms, curly quotes, deleted control characters),
   NFC (`tensorflow_text.normalize_utf8`); then `html.unescape` twice,
   named and numeric references (`&#128512;`) alike, with Python's rules for
   invalid code points.
3. Python's `str.split` whitespace collapsed, stripped, Unicode lowercase.

ftfy's badness heuristics (partial repairs) are not reproduced; see
export/README.md ("text_encoder_strings") for the rows that differ.

Example:
    >>> cleaner = TextCleaner()
    >>> cleaner(tf.constant(["Don\\u2019t  &amp;amp; caf\\u00c3\\u00a9 &#128512;"])).numpy()[0].decode()
    "don't & café 😀"
"""

import html
import html.entities
import re

import ftfy.chardata  # importing ftfy registers its sloppy-windows-1252 codec
import tensorflow as tf
import tensorflow_text as tf_text

# Text that ftfy and HTML unescaping leave unchanged (`keras_clip.tokenizer`).
PLAIN_ASCII = r"[\t\n\x20-\x25\x27-\x7e]*"
# Python's str.split() whitespace.
WHITESPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+"
ANSI_ESCAPE = r"\x1b\[[0-9;]*[a-zA-Z]"  # ftfy: remove_terminal_escapes
_MISSING = "\x01\x01"  # a lookup's default: no single character or entity equals it


def _char_class(chars):
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(set(chars))) + "]"


def _sloppy_1252(byte):
    """Characters that stand for `byte` in UTF-8 read as windows-1252 or latin-1."""
    chars = {chr(byte), bytes([byte]).decode("sloppy-windows-1252")}
    return sorted(chars)


def _byte_class(first, last, skip=()):
    return _char_class([c for b in range(first, last + 1) if b not in skip for c in _sloppy_1252(b)])


def mojibake_pattern():
    """Valid UTF-8 byte sequences, each byte read as windows-1252 (what ftfy repairs).

    Not after "×" (byte 0xD7): ftfy leaves "×·", "×»", ... (Hebrew in UTF-8) alone.
    """
    cont = _byte_class(0x80, 0xBF)
    two = _byte_class(0xC2, 0xDF, skip=(0xD7,)) + cont
    three = [_byte_class(0xE0, 0xE0) + _byte_class(0xA0, 0xBF) + cont,
             _byte_class(0xE1, 0xEF, skip=(0xED,)) + cont + cont,
             _byte_class(0xED, 0xED) + _byte_class(0x80, 0x9F) + cont]
    four = [_byte_class(0xF0, 0xF0) + _byte_class(0x90, 0xBF) + cont + cont,
            _byte_class(0xF1, 0xF3) + cont * 3,
            _byte_class(0xF4, 0xF4) + _byte_class(0x80, 0x8F) + cont + cont]
    return "|".join(four + three + [two])


def _char_table():
    """char -> replacement: ftfy's per-character fixes, composed in ftfy's order."""
    steps = [
        lambda c: bytes([ord(c)]).decode("sloppy-windows-1252") if 0x80 <= ord(c) <= 0x9F else c,
        lambda c: c.translate(ftfy.chardata.LIGATURES),
        lambda c: c.translate(ftfy.chardata.WIDTH_MAP),
        lambda c: ftfy.chardata.SINGLE_QUOTE_RE.sub("'", ftfy.chardata.DOUBLE_QUOTE_RE.sub('"', c)),
        lambda c: c.translate(ftfy.chardata.CONTROL_CHARS),
    ]
    chars = {chr(c) for c in range(0x80, 0xA0)} | {chr(c) for c in ftfy.chardata.LIGATURES}
    chars |= {chr(c) for c in ftfy.chardata.WIDTH_MAP} | {chr(c) for c in ftfy.chardata.CONTROL_CHARS}
    chars |= set("\u02bc\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f")
    table = {}
    for char in sorted(chars):
        fixed = char
        for step in steps:
            fixed = "".join(step(c) for c in fixed)
        if fixed != char:
            table[char] = fixed
    return table


def _named_entities():
    """(pattern, {entity: text}): html.unescape's named references.

    Names with ';' first; then the legacy names HTML reads without ';', longest
    first (html.unescape takes the longest such prefix).
    """
    html5 = html.entities.html5
    with_semicolon = sorted((k for k in html5 if k.endswith(";")), key=len, reverse=True)
    legacy = sorted((k for k in html5 if not k.endswith(";")), key=len, reverse=True)
    names = "|".join(re.escape(k) for k in with_semicolon + legacy)
    return f"&(?:{names})", {"&" + k: v for k, v in html5.items()}


NUMERIC_ENTITY = r"&#(?:[0-9]+|[xX][0-9a-fA-F]+);?"


def _string_table(mapping, key_dtype=tf.string):
    keys = list(mapping)
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, key_dtype), tf.constant([mapping[k] for k in keys], tf.string))
    return tf.lookup.StaticHashTable(initializer, default_value=_MISSING)


def _map_chars(texts, table):
    """Each character replaced by `table`'s value where it has one."""
    chars = tf.strings.unicode_split(texts, "UTF-8")
    mapped = table.lookup(chars.flat_values)
    fixed = tf.where(tf.equal(mapped, _MISSING), chars.flat_values, mapped)
    return tf.strings.reduce_join(chars.with_flat_values(fixed), axis=-1)


def _rows_where(condition, function, texts):
    """`function` applied only to the rows where `condition` holds."""
    parts = tf.dynamic_partition(texts, tf.cast(condition, tf.int32), 2)
    positions = tf.dynamic_partition(tf.range(tf.shape(texts)[0]), tf.cast(condition, tf.int32), 2)
    return tf.dynamic_stitch(positions, [parts[0], function(parts[1])])


class TextCleaner(tf.Module):
    """`keras_clip.tokenizer.clean_text` for a `(batch,)` tf.string tensor, in TF ops.

    Example:
        >>> TextCleaner()(tf.constant(["\\uff21 \\u201cQuote\\u201d"])).numpy()
        array([b'a "quote"'], dtype=object)
    """

    def __init__(self):
        super().__init__()
        self._char_fixes = _string_table(_char_table())
        named_pattern, named = _named_entities()
        self._entity_pattern = f"{NUMERIC_ENTITY}|{named_pattern}"
        self._named = _string_table(named)
        invalid = {k: "" for k in html._invalid_codepoints}
        invalid.update(html._invalid_charrefs)  # these win, as in html.unescape
        self._invalid_refs = _string_table(invalid, tf.int64)
        bytes_of = {c: bytes([b]) for b in range(0x80, 0x100) for c in _sloppy_1252(b)}
        self._bytes_of = _string_table({k.encode(): v for k, v in bytes_of.items()})
        self._mojibake = mojibake_pattern()
        self._lost_byte = f"{_byte_class(0xC2, 0xF4)}{_byte_class(0x80, 0xBF)}?\\x{{fffd}}"

    def __call__(self, texts):
        transcoded = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
        tf.debugging.Assert(  # the message only: the data would hold the invalid bytes
            tf.reduce_all(tf.equal(transcoded, texts)),
            ["text_encoder_strings expects UTF-8 text in `texts`; a row has an invalid byte."])
        texts = tf.strings.regex_replace(texts, "\x00", "")
        plain = tf.strings.regex_full_match(texts, PLAIN_ASCII)
        texts = _rows_where(tf.logical_not(plain), self._ftfy_and_html, texts)
        texts = tf.strings.regex_replace(texts, WHITESPACE, " ")
        texts = tf.strings.strip(tf.strings.regex_replace(texts, "^ | $", ""))
        return tf.strings.lower(texts, encoding="utf-8")

    def _ftfy_and_html(self, texts):
        has_tag = tf.strings.regex_full_match(texts, "(?s).*<.*")  # ftfy skips HTML then
        texts = tf.where(has_tag, texts, self.unescape(texts))
        for _ in range(2):  # text encoded twice the wrong way ("cafÃƒÂ©")
            texts = self.repair_mojibake(texts)
        texts = tf.strings.regex_replace(texts, ANSI_ESCAPE, "")
        texts = _map_chars(texts, self._char_fixes)
        texts = tf_text.normalize_utf8(texts, "NFC")
        return self.unescape(self.unescape(texts))

    def unescape(self, texts):
        """`html.unescape` on each row: named and numeric character references."""
        pieces = tf_text.regex_split(texts, self._entity_pattern, self._entity_pattern)
        flat = pieces.flat_values
        named = self._named.lookup(flat)
        numeric = tf.strings.regex_full_match(flat, NUMERIC_ENTITY)
        fixed = tf.where(numeric, self._numeric_text(flat), tf.where(tf.equal(named, _MISSING), flat, named))
        return tf.strings.reduce_join(pieces.with_flat_values(fixed), axis=-1)

    def _numeric_text(self, pieces):
        """The text of each numeric reference (other pieces give garbage, unused)."""
        hexadecimal = tf.strings.regex_full_match(pieces, "&#[xX].*")
        digits = tf.strings.regex_replace(pieces, r"^&#[xX]?0*|;$", "")
        too_long = tf.strings.length(digits) > 7  # > 0x10FFFF either way
        digits = tf.where(too_long | tf.equal(digits, ""), "0", digits)
        chars = tf.strings.unicode_decode(digits, "UTF-8")
        nibbles = tf.where(chars <= ord("9"), chars - ord("0"), tf.bitwise.bitwise_or(chars, 32) - ord("a") + 10)
        places = tf.ragged.range(chars.row_lengths() - 1, -1, -1)
        base = tf.where(hexadecimal, tf.constant(16, tf.int64), tf.constant(10, tf.int64))
        weights = tf.pow(tf.expand_dims(base, 1), tf.cast(places, tf.int64))
        value = tf.reduce_sum(tf.cast(nibbles, tf.int64) * weights, axis=1)
        value = tf.where(too_long, tf.constant(0x110000, tf.int64), value)
        invalid = self._invalid_refs.lookup(value)
        replacement = (value > 0x10FFFF) | ((value >= 0xD800) & (value <= 0xDFFF))
        code = tf.cast(tf.where(replacement, tf.constant(0xFFFD, tf.int64), value), tf.int32)
        text = tf.strings.unicode_encode(tf.expand_dims(code, 1), "UTF-8")
        return tf.where(tf.equal(invalid, _MISSING), text, invalid)

    def repair_mojibake(self, texts):
        """UTF-8 read as windows-1252 decoded again: marked spans back to bytes."""
        texts = tf.strings.regex_replace(texts, "[\x01\x02]", "")  # ftfy deletes them anyway
        texts = tf.strings.regex_replace(texts, self._lost_byte, "\ufffd")
        texts = tf.strings.regex_replace(texts, self._mojibake, "\x01\\0\x02")
        chars = tf.strings.unicode_split(texts, "UTF-8")
        flat = chars.flat_values
        opens, closes = tf.equal(flat, "\x01"), tf.equal(flat, "\x02")
        # Spans never cross rows, so a running count over all rows marks them.
        depth = tf.cumsum(tf.cast(opens, tf.int32) - tf.cast(closes, tf.int32))
        inside = (depth > 0) & tf.logical_not(opens)
        as_byte = self._bytes_of.lookup(flat)
        fixed = tf.where(inside, as_byte, flat)
        fixed = tf.where(opens | closes, "", fixed)
        return tf.strings.reduce_join(chars.with_flat_values(fixed), axis=-1)
