"""`text_tokenizer.onnx`: CLIP's tokenizer as an ONNX graph (strings -> token ids).

The graph runs on ONNX Runtime with the onnxruntime-extensions custom-op library
registered (`tokenizer_session`). Steps, in node order:

1. NUL characters deleted (`_drop_nul`).
2. On rows that are not plain ASCII only (`_only_where_needed`): ftfy's fixes in
   ftfy's order as `StringECMARegexReplace` steps — HTML entities, UTF-8 read as
   windows-1252 (`_mojibake_nodes`), deleted control characters, a lookup table
   (curly quotes, C1 controls, full-width forms, ligatures, half-width kana),
   NFC without reordering (`_nfc`) — then the reference's two HTML unescapes;
   numeric references are computed
   (`numeric_entities`). (`StringRegexReplace`, the RE2 op,
   does nothing in the 0.15.2 wheel; std::regex works on bytes, hence the
   byte tries of `_alternation`.)
3. Whitespace collapse and strip, Unicode lowercase (`StringNormalizer`).
4. `_word_nodes`: spaces and tabs that make the `CLIPTokenizer` op's word
   split (GPT-2 style) equal OpenAI's; `_FOLDED_WORDS` through sentinels.
5. The `CLIPTokenizer` op on the bundled vocabulary, the tab tokens dropped
   (`_drop_tab_nodes`), the sentinel ids swapped
   (`_sentinel_nodes`), then zero padding to `context_length`, truncation that
   keeps the end token last, int32 (`_post_nodes`).

What it cannot do (ftfy's heuristics, NFC's reordering) is counted in export/README.md
("The tokenizer graph").
"""

import html
import json
import os
import unicodedata

import numpy as np

from keras_clip.export.numeric_entities import numeric_entity_nodes
from keras_clip.export.string_lookup import lookup_nodes
from keras_clip.text_cleaning_tables import nfc_pairs, nfc_singletons
from keras_clip.tokenizer import CLIPTokenizer, _byte_symbols

_CONTRIB = "ai.onnx.contrib"
_OP_START, _OP_END = "<|startoftext|>", "<|endoftext|>"  # names the op looks up
_REGEX_SPECIAL = set("\\^$.|?*+()[]{}/")


def _literal(text):
    """ECMAScript pattern matching `text` literally (UTF-8 bytes match as bytes)."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _rewrite(text):
    """ECMAScript replacement inserting `text` literally."""
    return text.replace("$", "$$")


def _alternation(chars):
    """Pattern matching any one of `chars`, as a trie over their UTF-8 bytes.

    std::regex (the ECMAScript op) works on bytes and recurses per branch: a
    flat alternation of many characters is slow and overflows its stack.
    """
    trie = {}
    for char in chars:
        node = trie
        for byte in char.encode("utf-8"):
            node = node.setdefault(byte, {})

    def emit(node):
        parts = [f"\\x{byte:02x}" + (emit(child) if child else "")
                 for byte, child in sorted(node.items())]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return emit(trie)


# Python's str.split() whitespace (what the reference collapses); ftfy removes
# \x0b and \x1c-\x1f first, so they are not listed.
_WHITESPACE = _alternation(
    "\t\n\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))) + "+"
_ASCII_PUNCTUATION = r"!-/:-@\[-`{-~"
# OpenAI's \p{N}: every number character is a word of its own.
_DIGITS = _alternation([chr(c) for c in range(0x10000) if unicodedata.category(chr(c))[0] == "N"])


def _rewrite_keep(text):
    """Replacement: the first group, then `text`."""
    return "$1" + _rewrite(text)


def _ftfy_table():
    """(character, replacement) pairs for the ftfy fixes a lookup can do."""
    pairs = [("\u2018", "'"), ("\u2019", "'"), ("\u201a", "'"), ("\u201b", "'"),
             ("\u201c", '"'), ("\u201d", '"'), ("\u201e", '"'), ("\u201f", '"')]
    # C1 controls read as windows-1252 (ftfy: fix_c1_controls).
    for code in range(0x80, 0xA0):
        try:
            pairs.append((chr(code), bytes([code]).decode("cp1252")))
        except UnicodeDecodeError:
            pass
    # Full-width ASCII forms (ftfy: fix_character_width) and Latin ligatures.
    pairs += [(chr(0xFF01 + i), chr(0x21 + i)) for i in range(94)]
    pairs += [("\ufb00", "ff"), ("\ufb01", "fi"), ("\ufb02", "fl"), ("\ufb03", "ffi"),
              ("\ufb04", "ffl"), ("\ufb05", "st"), ("\ufb06", "st")]
    return pairs + _halfwidth_kana()


def _halfwidth_kana():
    """Half-width katakana to full width (NFKC, voiced pairs first), as ftfy does."""
    kana = [chr(c) for c in range(0xFF61, 0xFFA0)]
    marks = ("\uff9e", "\uff9f")
    pairs = []
    for char in kana:
        for mark in marks:
            fixed = unicodedata.normalize("NFKC", char + mark)
            if len(fixed) == 1:
                pairs.append((char + mark, fixed))
    return pairs + [(c, unicodedata.normalize("NFKC", c)) for c in kana]


# Characters ftfy deletes (remove_control_chars, the byte-order mark).
_DELETED = _alternation(
    [chr(c) for c in [*range(1, 9), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070),
                      0xFEFF, *range(0xFFF9, 0xFFFD)]])


def _entity_table():
    """(entity, text) pairs: common named HTML entities (numeric ones: `numeric_entities`)."""
    names = ["amp", "lt", "gt", "quot", "apos", "nbsp", "hellip", "mdash", "ndash",
             "copy", "reg", "trade", "euro", "pound", "yen", "cent", "deg", "frac12",
             "frac14", "frac34", "eacute", "egrave", "aacute", "agrave", "uuml", "ouml",
             "auml", "ccedil", "ntilde", "zwj", "zwnj", "shy", "laquo", "raquo",
             "lsquo", "rsquo", "ldquo", "rdquo", "times", "middot", "bull"]
    pairs = [(f"&{n};", html.unescape(f"&{n};")) for n in names]
    # Names HTML also reads without ';' (after the ';' forms: "&not" is in "&notin;").
    pairs += [(f"&{n}(?!;)", html.unescape(f"&{n}")) for n in ["amp", "lt", "gt", "quot", "nbsp",
                                                          "copy", "reg", "not"]]
    return [(e, t) for e, t in pairs if e != t]


def _string_constant(name, value):
    from onnx import TensorProto, helper

    data = value if isinstance(value, bytes) else value.encode("utf-8")
    tensor = helper.make_tensor(name, TensorProto.STRING, [1], [data])
    return helper.make_node("Constant", [], [name], value=tensor)


class _Builder:
    """Collects a chain of string-rewriting nodes."""

    def __init__(self, source):
        self.nodes, self.current, self._n = [], source, 0

    def _add(self, op, inputs):
        from onnx import helper

        self._n += 1
        out = f"text_{self._n}"
        self.nodes.append(helper.make_node(op, [self.current] + inputs, [out], domain=_CONTRIB))
        self.current = out

    def replace(self, pattern, rewrite):
        k = self._n + 1
        self.nodes += [_string_constant(f"pattern_{k}", pattern),
                       _string_constant(f"rewrite_{k}", rewrite)]
        self._add("StringECMARegexReplace", [f"pattern_{k}", f"rewrite_{k}"])

    def lower(self):
        """Unicode lowercase: ONNX StringNormalizer (onnxruntime-extensions'
        StringLower maps only ASCII and Latin-1). It refuses an empty batch, so
        one empty string is appended and dropped again."""
        from onnx import helper

        self._n += 1
        k = self._n
        self.nodes += [
            _string_constant(f"extra_{k}", ""),
            _int_constant(f"first_{k}", [0]), _int_constant(f"but_last_{k}", [-1]),
            helper.make_node("Concat", [self.current, f"extra_{k}"], [f"padded_{k}"], axis=0),
            helper.make_node("StringNormalizer", [f"padded_{k}"], [f"lowered_{k}"],
                             case_change_action="LOWER", locale="C.UTF-8"),
            helper.make_node("Slice", [f"lowered_{k}", f"first_{k}", f"but_last_{k}"], [f"text_{k}"]),
        ]
        self.current = f"text_{k}"


def _unescape(builder):
    """One `html.unescape` pass: numeric references computed, named ones from the table."""
    builder._n += 1
    nodes, builder.current = numeric_entity_nodes(builder.current, f"entities_{builder._n}")
    builder.nodes += nodes
    for entity, text in _entity_table():
        pattern = entity if entity.endswith("(?!;)") else _literal(entity)
        builder.replace(pattern, _rewrite(text))


def _ftfy_and_html(builder):
    """ftfy's order (HTML, mojibake, table), then the reference's two unescapes."""
    _unescape(builder)
    for _ in range(2):  # text encoded twice the wrong way ("ÃƒÂ©") needs two rounds
        _mojibake_nodes(builder)
    builder.replace(_DELETED, "")
    for char, fixed in _ftfy_table():
        builder.replace(_literal(char), _rewrite(fixed))
    _nfc(builder)
    _unescape(builder)
    _unescape(builder)


def _nfc(builder):
    """ftfy's last step, NFC, without canonical reordering: singletons replaced
    (U+0387 -> U+00B7, U+0344 -> U+0308 U+0301), then starter + mark pairs
    composed, twice (a composite composes again: e + U+0323 + U+0302)."""
    singles, pairs = nfc_singletons(), nfc_pairs()
    steps = [("nfc_singles", _alternation(singles), singles)]
    pair_pattern = (f"(?:{_alternation({p[0] for p in pairs})})"
                    f"(?:{_alternation({p[1] for p in pairs})})")
    steps += [(f"nfc_pairs_{k}", pair_pattern, pairs) for k in range(2)]
    for tag, pattern, table in steps:
        builder._n += 1
        nodes, builder.current = lookup_nodes(builder.current, f"{tag}_{builder._n}", pattern, table)
        builder.nodes += nodes


def _only_where_needed(builder, steps):
    """Runs `steps` (hundreds of nodes) on the rows that are not plain ASCII only.

    Plain rows (printable ASCII, tab, newline, no '&') are left unchanged by
    ftfy and HTML unescaping, as in `keras_clip.tokenizer.clean_text`.
    """
    from onnx import TensorProto, helper

    n = helper.make_node
    texts = builder.current
    builder.replace(r"[\t\n\x20-\x25\x27-\x7e]+", "")
    builder.nodes += [
        n("StringLength", [builder.current], ["odd_chars"], domain=_CONTRIB),
        _int_constant("no_chars", 0), _int_constant("one_row", 1),
        _int_constant("first_axis", [0]),
        n("Greater", ["odd_chars", "no_chars"], ["needs"]),
        n("NonZero", ["needs"], ["needs_at_2d"]),
        n("Squeeze", ["needs_at_2d", "first_axis"], ["needs_at"]),
        n("Gather", [texts, "needs_at"], ["odd_texts"]),
    ]
    builder.current = "odd_texts"
    steps(builder)
    builder.nodes += [
        n("Shape", [texts], ["rows"]),
        n("Squeeze", ["rows", "first_axis"], ["rows_scalar"]),
        n("Range", ["no_chars", "rows_scalar", "one_row"], ["row_ids"]),
        n("Cast", ["needs"], ["needs_int"], to=TensorProto.INT64),
        n("CumSum", ["needs_int", "no_chars"], ["needs_rank"]),
        n("Add", ["needs_rank", "rows_scalar"], ["after_rows"]),
        n("Sub", ["after_rows", "one_row"], ["cleaned_ids"]),
        n("Where", ["needs", "cleaned_ids", "row_ids"], ["pick"]),
        n("Concat", [texts, builder.current], ["both"], axis=0),
        n("Gather", ["both", "pick"], ["merged"]),
    ]
    builder.current = "merged"


def _drop_nul(builder):
    """Deletes NUL characters (ftfy does; the string ops would end the text there).

    StringJoin crashes on an empty batch (0.15.2): a row "x" is appended and
    dropped again.
    """
    from onnx import helper

    n = helper.make_node
    builder.nodes += [
        _string_constant("spare_row", "x"), _string_constant("no_separator", ""),
        _int_constant("part_axis", [1]), _int_constant("row_zero", [0]),
        _int_constant("but_spare", [-1]),
        n("Concat", [builder.current, "spare_row"], ["with_spare"], axis=0),
        n("StringSplit", ["with_spare"], ["nul_parts", "nul_counts"], delimiter="\x00"),
        n("StringJoin", ["nul_parts", "no_separator", "part_axis"], ["joined"], domain=_CONTRIB),
        n("Slice", ["joined", "row_zero", "but_spare"], ["without_nul"]),
    ]
    builder.current = "without_nul"


def _cleaning_nodes(builder):
    """NUL, ftfy subset and HTML where needed, whitespace collapse and strip, lowercase."""
    _drop_nul(builder)
    _only_where_needed(builder, _ftfy_and_html)
    builder.replace(_WHITESPACE, " ")
    builder.replace("^ | $", "")
    builder.replace("\u0130", "i\u0307")  # Python's lower(); C.UTF-8 gives "i"
    builder.lower()


def _sloppy_1252(byte):
    """Characters that stand for `byte` in UTF-8 read as windows-1252 (or latin-1)."""
    latin1 = chr(byte)
    try:
        char = bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return [latin1]
    return [char, latin1] if char != latin1 else [char]


def _byte_class(first, last):
    return _alternation([c for b in range(first, last + 1) for c in _sloppy_1252(b)])


def _mojibake_sequence():
    """UTF-8 byte sequences (valid ones) read as windows-1252: what ftfy repairs."""
    cont = _byte_class(0x80, 0xBF)
    lead = {b: _byte_class(b, b) for b in range(0xC2, 0xF5)}
    # Not after "×" (0xD7): ftfy leaves "×·", "×»", ... (Hebrew in UTF-8) alone.
    two = _alternation([c for b in range(0xC2, 0xE0) if b != 0xD7 for c in _sloppy_1252(b)]) + cont
    three = "|".join([
        lead[0xE0] + _byte_class(0xA0, 0xBF) + cont,
        _alternation([c for b in list(range(0xE1, 0xED)) + [0xEE, 0xEF] for c in _sloppy_1252(b)])
        + cont + cont,
        lead[0xED] + _byte_class(0x80, 0x9F) + cont])
    four = "|".join([lead[0xF0] + _byte_class(0x90, 0xBF) + cont + cont,
                     _byte_class(0xF1, 0xF3) + cont + cont + cont,
                     lead[0xF4] + _byte_class(0x80, 0x8F) + cont + cont])
    return f"(?:{four}|{three}|{two})"


_IN_SPAN = "(?=[^\\x01\\x02]*\\x02)"  # inside a \x01...\x02 span


def _mojibake_nodes(builder):
    """Repairs UTF-8 read as windows-1252 ("cafÃ©" -> "café"), in byte steps.

    Spans that decode are marked with \x01...\x02; inside them each character
    becomes \x03 + its byte, or \x04 + (byte - 0x40) for the bytes 0xC0-0xFF
    (characters C3 80-BF in UTF-8); the markers then become the raw bytes.
    No step can match bytes an earlier step wrote.
    """
    # ftfy: a sequence whose last byte was lost ("Ã�") is one replacement character.
    builder.replace(f"(?:{_byte_class(0xC2, 0xF4)})(?:{_byte_class(0x80, 0xBF)})?\ufffd", "\ufffd")
    builder.replace(_mojibake_sequence(), "\x01$&\x02")
    builder.replace("\\xc2([\\x80-\\xbf])" + _IN_SPAN, "\x03$1")  # U+0080-00BF
    builder.replace("\\xc3([\\x80-\\xbf])" + _IN_SPAN, "\x04$1")  # U+00C0-00FF
    for byte in range(0x80, 0xA0):
        special = [c for c in _sloppy_1252(byte) if ord(c) > 0xFF]
        if special:
            builder.replace(_alternation(special) + _IN_SPAN, b"\x03" + bytes([byte]))
    builder.replace("\\x03([\\x80-\\xbf])", "$1")
    for byte in range(0xC0, 0x100):
        builder.replace(f"\\x04\\x{byte - 0x40:02x}", bytes([byte]))
    builder.replace("\\x01|\\x02", "")


# Words OpenAI's case-insensitive pattern finds through the fold of "ſ" to "s"
# (a contraction, the start token's spelling) and encodes as one word; the op
# cannot. Each becomes a private-use sentinel with as many tokens, whose ids are
# swapped for the word's afterwards (`_sentinel_nodes`). Longest first.
_FOLDED_WORDS = [("<\u017ftart_of_text>", "\uf3ff" * 3), ("'\u017f", "\uf3ff")]


def _word_nodes(builder):
    """Makes the op's word split equal OpenAI's where the two differ.

    The op deletes newlines, glues a space to the next word and keeps digit
    runs together; OpenAI takes one word per digit, a contraction after a
    space, and the special tokens only where a word starts.
    """
    builder.replace(r"<\|(startoftext|endoftext)\|>", "<| $1|>")  # plain text for OpenAI
    for word, sentinel in _FOLDED_WORDS:
        builder.replace(f"(^|[^{_ASCII_PUNCTUATION}]){_literal(word)}", _rewrite_keep(f" {sentinel} "))
    for name, token in (("start", _OP_START), ("end", _OP_END)):
        builder.replace(f"(^|[^{_ASCII_PUNCTUATION}])<{name}_of_text>", _rewrite_keep(f" {token} "))
    builder.replace(_DIGITS, "$& ")
    # A tab is a word of its own to the op (one token, dropped by `_drop_tab_nodes`):
    # the contraction then starts a word, even after punctuation. Cleaned text
    # holds no tab (whitespace collapse).
    builder.replace("([^ ]) +'(s|t|re|ve|m|ll|d)", "$1\t'$2")
    # The op crashes (segfault, 0.15.2) on a space before a special token.
    builder.replace(r" +(<\|(?:start|end)oftext\|>)", "$1")


def _vocabulary_attributes(tokenizer):
    tokens = list(tokenizer.id_to_token)
    tokens[tokenizer.start_token_id] = _OP_START
    tokens[tokenizer.end_token_id] = _OP_END
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False,
                       separators=(",", ":"))
    return {"vocab": vocab, "merges": "\n".join(tokenizer.merge_lines)}


def _int_constant(name, values):
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name],
                            value=numpy_helper.from_array(np.asarray(values, np.int64), name))


def _sentinel_nodes(tokenizer, ids):
    """Swaps each sentinel's ids (see `_FOLDED_WORDS`) for its word's; -> ids name."""
    from onnx import helper

    n = helper.make_node
    nodes = [_int_constant("shift_axis", [1]), _int_constant("to_end", [2**62])]
    for k, (word, sentinel) in enumerate(_FOLDED_WORDS):
        source, target = (tokenizer.token_ids([w])[0] for w in (sentinel, word))
        if len(source) != len(target):
            raise ValueError(f"sentinel {sentinel!r} has {len(source)} tokens; {word!r} {len(target)}")
        hits = []
        for p, token in enumerate(source):  # hit at j: ids[j + p] == source[p] for all p
            name = f"s{k}_{p}"
            nodes += [_int_constant(f"{name}_pads", [0, 0, 0, p]), _int_constant(f"{name}_from", [p]),
                      _int_constant(f"{name}_id", token),
                      n("Pad", [ids, f"{name}_pads", "minus_one"], [f"{name}_padded"]),
                      n("Slice", [f"{name}_padded", f"{name}_from", "to_end", "shift_axis"],
                        [f"{name}_ahead"]),
                      n("Equal", [f"{name}_ahead", f"{name}_id"], [f"{name}_eq"])]
            hits.append(f"{name}_eq")
        for p in range(1, len(hits)):
            nodes.append(n("And", [hits[p - 1], hits[p]], [f"s{k}_all_{p}"]))
            hits[p] = f"s{k}_all_{p}"
        nodes.append(n("Cast", [hits[-1]], [f"s{k}_hit"], to=7))  # int64
        for p, token in enumerate(target):
            name = f"t{k}_{p}"
            nodes += [_int_constant(f"{name}_pads", [0, p, 0, 0]), _int_constant(f"{name}_end", [-p or 2**62]),
                      _int_constant(f"{name}_id", token),
                      n("Pad", [f"s{k}_hit", f"{name}_pads"], [f"{name}_padded"]),
                      n("Slice", [f"{name}_padded", "row_start", f"{name}_end", "shift_axis"],
                        [f"{name}_at"]),
                      n("Cast", [f"{name}_at"], [f"{name}_here"], to=9),  # bool
                      n("Where", [f"{name}_here", f"{name}_id", ids], [f"{name}_ids"])]
            ids = f"{name}_ids"
    nodes += [_int_constant("minus_one", -1), _int_constant("row_start", [0])]
    return nodes, ids


def _tab_id(tokenizer):
    """Id of the word "\\t" (byte 0x09 + "</w>"); `token_ids` cleans the tab away."""
    symbols, _ = _byte_symbols()
    return tokenizer.id_to_token.index(symbols[9] + "</w>")


def _drop_tab_nodes(tab_id, ids, mask):
    """Removes the tab tokens `_word_nodes` inserted: -> (ids, mask) names.

    Kept tokens move to the front in order (TopK of position, dropped ones
    pushed behind every row end), the mask marks the kept ones.
    """
    from onnx import TensorProto, helper

    n = helper.make_node
    return [
        _int_constant("tab_id", tab_id), _int_constant("tab_first", [0]),
        _int_constant("tab_zero", 0), _int_constant("tab_one", 1),
        n("Equal", [ids, "tab_id"], ["is_tab"]),
        n("Not", ["is_tab"], ["not_tab"]),
        n("Cast", ["not_tab"], ["not_tab_int"], to=TensorProto.INT64),
        n("Mul", [mask, "not_tab_int"], ["tab_mask"]),
        n("Shape", [ids], ["id_shape"]),
        n("Gather", ["id_shape", "tab_one"], ["width"]),  # scalar N
        n("Range", ["tab_zero", "width", "tab_one"], ["id_positions"]),
        n("Sub", ["tab_one", "tab_mask"], ["dropped"]),
        n("Mul", ["dropped", "width"], ["push_back"]),
        n("Add", ["id_positions", "push_back"], ["order_key"]),
        n("Unsqueeze", ["width", "tab_first"], ["width_1d"]),
        n("TopK", ["order_key", "width_1d"], ["order_value", "order"], axis=1, largest=0, sorted=1),
        n("GatherElements", [ids, "order"], ["kept_ids"], axis=1),
        n("GatherElements", ["tab_mask", "order"], ["kept_mask"], axis=1),
    ], "kept_ids", "kept_mask"


def _post_nodes(context_length, end_id, ids, mask):
    """(B, N) ids + mask -> (B, context_length) int32, zero-padded, end token last."""
    from onnx import TensorProto, helper

    n = helper.make_node
    return [
        _int_constant("zero_pads", [0, 0, 0, context_length]),
        _int_constant("starts", [0]), _int_constant("ends", [context_length]),
        _int_constant("axes", [1]),
        _int_constant("end_id", end_id), _int_constant("limit", context_length),
        n("Mul", [ids, mask], ["masked"]),  # the op pads with the end id
        n("Pad", ["masked", "zero_pads"], ["padded"]),
        n("Slice", ["padded", "starts", "ends", "axes"], ["cut"]),
        n("ReduceSum", [mask, "axes"], ["lengths"], keepdims=1),  # (B, 1)
        n("Greater", ["lengths", "limit"], ["too_long"]),
        n("Range", ["starts_scalar", "limit", "one"], ["positions"]),
        n("Equal", ["positions", "last_scalar"], ["is_last"]),
        n("And", ["too_long", "is_last"], ["put_end"]),
        n("Where", ["put_end", "end_id", "cut"], ["ids64"]),
        n("Cast", ["ids64"], ["token_ids"], to=TensorProto.INT32),
        _int_constant("starts_scalar", 0), _int_constant("one", 1),
        _int_constant("last_scalar", context_length - 1),
    ]


def build_tokenizer_graph(context_length=77, tokenizer=None):
    """The tokenizer graph as an `onnx.ModelProto` (see `export_tokenizer_graph`)."""
    from onnx import TensorProto, helper

    if not isinstance(context_length, int) or context_length < 2:
        raise ValueError(f"`context_length` must be an int >= 2; received {context_length!r}.")
    tokenizer = tokenizer or CLIPTokenizer(context_length=context_length)
    builder = _Builder("texts")
    _cleaning_nodes(builder)
    _word_nodes(builder)
    builder.nodes.append(helper.make_node(
        "CLIPTokenizer", [builder.current], ["op_ids", "op_mask"], domain=_CONTRIB,
        padding_length=-1, **_vocabulary_attributes(tokenizer)))
    drops, ids, mask = _drop_tab_nodes(_tab_id(tokenizer), "op_ids", "op_mask")
    swaps, ids = _sentinel_nodes(tokenizer, ids)
    nodes = builder.nodes + drops + swaps + _post_nodes(context_length, tokenizer.end_token_id, ids, mask)
    graph = helper.make_graph(
        nodes, "clip_text_tokenizer",
        [helper.make_tensor_value_info("texts", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["batch", context_length])])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 20), helper.make_opsetid(_CONTRIB, 1),
        helper.make_opsetid("ai.onnx.ml", 4)],
        producer_name="keras_clip")
    helper.set_model_props(model, {"context_length": str(context_length)})
    return model


def export_tokenizer_graph(path, context_length=77):
    """Writes `text_tokenizer.onnx`: `texts` string `(batch,)` -> `token_ids` int32.

    Ids equal `keras_clip.CLIPTokenizer`'s on ordinary text; see export/README.md
    ("tokenizer graph") for the rows that differ. Running it needs
    onnxruntime-extensions (`tokenizer_session`).

    Args:
        path: file to write.
        context_length: row length of `token_ids` (77 for every OpenAI model).

    Returns:
        `path`.

    Example:
        >>> export_tokenizer_graph("export/text_tokenizer.onnx")
        'export/text_tokenizer.onnx'
    """
    import onnx

    model = build_tokenizer_graph(context_length)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(model, path)
    return path


def tokenizer_session(path):
    """An `onnxruntime.InferenceSession` for `path`, extensions library registered.

    Example:
        >>> session = tokenizer_session("export/text_tokenizer.onnx")
        >>> session.run(None, {"texts": np.array(["a photo of a cat"], dtype=object)})[0][0, :7]
        array([49406,   320,  1125,   539,   320,  2368, 49407], dtype=int32)
    """
    import onnxruntime
    import onnxruntime_extensions

    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
