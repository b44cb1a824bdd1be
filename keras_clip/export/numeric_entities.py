"""Numeric HTML character references (`&#128512;`, `&#x1F600;`) as ONNX nodes.

Python's `html.unescape` turns a reference into `chr(number)` (with its
windows-1252 table for 0x80-0x9F, U+FFFD for surrogates and numbers past
U+10FFFF, nothing for the code points HTML forbids). A regex cannot compute a
code point, so the nodes do it in numbers: each reference is marked and split
off (`StringSplit`), its digits parsed (`Cast` for decimal, `LabelEncoder` per
hex digit), the HTML rules applied, the code point encoded as UTF-8 bytes in
integer arithmetic, the bytes looked up as one-byte strings and joined again
(`StringJoin` of onnxruntime-extensions).

Example:
    >>> nodes, out = numeric_entity_nodes("texts", "e1")  # "&#233;t&#xE9;" -> "été"
"""

import html

import numpy as np

_CONTRIB = "ai.onnx.contrib"
_MARK = "\uf3fe"  # splits a reference off its text (private use)
_DEC, _HEX = "\uf3fdD", "\uf3fdX"  # a marked reference's kind (private use)
_HEX_DIGITS = 6  # more significant digits than this are past U+10FFFF
_NO_BYTE = 256  # index of "" in the byte table
# Numbers too long for int64 (or past U+10FFFF by their length alone).
_TOO_LONG = r"&#[xX]0*[1-9a-fA-F][0-9a-fA-F]{6,};?|&#0*[1-9]\d{9,};?"


def _code_point_table():
    """`html.unescape`'s result for the numbers 0-159: a code point, or -1 (deleted)."""
    table = []
    for number in range(160):
        text = html.unescape(f"&#{number};")
        table.append(ord(text) if text else -1)
    return np.asarray(table, np.int64)


def numeric_entity_nodes(source, tag):
    """Nodes decoding the numeric references in strings `source` `(rows,)`.

    Args:
        source: name of a string tensor `(rows,)`.
        tag: prefix for the names of the nodes' tensors (unique per call).

    Returns:
        (nodes, name of the decoded `(rows,)` string tensor).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes = []

    def name(x):
        return f"{tag}_{x}"

    def node(op, inputs, output, domain="", **attrs):
        nodes.append(helper.make_node(op, [name(i) if not i.startswith("=") else i[1:]
                                           for i in inputs], [name(output)], domain=domain, **attrs))
        return output

    def const(x, value):
        items = value if isinstance(value, list) else [value]
        if isinstance(items[0], (str, bytes)):
            data = [v if isinstance(v, bytes) else v.encode("utf-8") for v in items]
            shape = [len(data)] if isinstance(value, list) else []
            tensor = helper.make_tensor(name(x), TensorProto.STRING, shape, data)
        else:
            tensor = numpy_helper.from_array(np.asarray(value, np.int64), name(x))
        nodes.append(helper.make_node("Constant", [], [name(x)], value=tensor))
        return x

    def replace(x, pattern, rewrite, out):
        p, r = const(out + "_pattern", pattern), const(out + "_rewrite", rewrite)
        return node("StringECMARegexReplace", [x, p, r], out, domain=_CONTRIB)

    text = replace("=" + source, _TOO_LONG, "\ufffd", "capped")
    text = replace(text, r"&#[xX]0*([0-9a-fA-F]+);?", f"{_MARK}{_HEX}$1{_MARK}", "hex_marked")
    text = replace(text, r"&#0*(\d+);?", f"{_MARK}{_DEC}$1{_MARK}", "marked")
    # One spare row: StringJoin crashes on an empty batch (0.15.2).
    const("spare", ["x"]), const("row_zero", [0]), const("but_spare", [-1])
    node("Concat", [text, "spare"], "with_spare", axis=0)
    node("StringSplit", ["with_spare"], "parts", delimiter=_MARK)
    nodes[-1].output.append(name("part_counts"))
    is_dec = node("RegexFullMatch", ["parts"], "is_dec", pattern=_DEC + "[0-9]+")
    is_hex = node("RegexFullMatch", ["parts"], "is_hex", pattern=_HEX + "[0-9a-fA-F]+")
    node("Or", [is_dec, is_hex], "is_ref")

    # Decimal: Cast parses the digits.
    node("Where", [is_dec, "parts", const("dec_zero", _DEC + "0")], "dec_source")
    digits = replace("dec_source", _DEC, "", "dec_digits")
    node("Cast", [digits], "dec_number", to=TensorProto.INT64)
    # Hex: the j-th digit from the right (or "" when shorter) times 16**j.
    node("Where", [is_hex, "parts", const("hex_zero", _HEX + "0")], "hex_source")
    terms = []
    for j in range(_HEX_DIGITS):
        digit = replace("hex_source", f"^{_HEX}[0-9a-fA-F]*([0-9a-fA-F])[0-9a-fA-F]{{{j}}}$|^[\\s\\S]*$",
                        "$1", f"hex_digit_{j}")
        keys = list("0123456789abcdef") + list("ABCDEF")
        values = list(range(16)) + list(range(10, 16))
        node("LabelEncoder", [digit], f"hex_value_{j}", domain="ai.onnx.ml",
             keys_strings=keys, values_int64s=values, default_int64=0)
        terms.append(node("Mul", [f"hex_value_{j}", const(f"place_{j}", 16**j)], f"hex_term_{j}"))
    total = terms[0]
    for j in range(1, _HEX_DIGITS):
        total = node("Add", [total, terms[j]], f"hex_sum_{j}")
    node("Where", [is_dec, "dec_number", total], "number")

    # html.unescape's rules: the table below 160, U+FFFD, deleted code points (-1).
    const("table", _code_point_table()), const("last_small", 159), const("small_limit", 160)
    node("Min", ["number", "last_small"], "small_index")
    node("Gather", ["table", "small_index"], "small_point")
    node("Less", ["number", "small_limit"], "is_small")
    node("Where", ["is_small", "small_point", "number"], "point")
    for x, v in [("sur_lo", 0xD7FF), ("sur_hi", 0xE000), ("max_point", 0x10FFFF),
                 ("nc_lo", 0xFDCF), ("nc_hi", 0xFDF0), ("plane", 0x10000), ("plane_end", 0xFFFD),
                 ("replacement", 0xFFFD), ("minus_one", -1)]:
        const(x, v)
    node("Greater", ["point", "sur_lo"], "above_lo"), node("Less", ["point", "sur_hi"], "below_hi")
    node("And", ["above_lo", "below_hi"], "surrogate")
    node("Greater", ["point", "max_point"], "too_big")
    node("Or", ["surrogate", "too_big"], "invalid")
    node("Where", ["invalid", "replacement", "point"], "point_2")
    node("Greater", ["point_2", "nc_lo"], "nc_above"), node("Less", ["point_2", "nc_hi"], "nc_below")
    node("And", ["nc_above", "nc_below"], "nc_range")
    node("Mod", ["point_2", "plane"], "in_plane")
    node("Greater", ["in_plane", "plane_end"], "nc_end")  # U+xFFFE, U+xFFFF
    node("Or", ["nc_range", "nc_end"], "forbidden")
    cp = node("Where", ["forbidden", "minus_one", "point_2"], "code_point")

    # UTF-8: lead byte and up to three continuation bytes; _NO_BYTE where none.
    for x, v in [("none", _NO_BYTE), ("zero", 0), ("b80", 0x80), ("b800", 0x800), ("b10000", 0x10000),
                 ("c0", 0xC0), ("e0", 0xE0), ("f0", 0xF0), ("k64", 64), ("k4096", 4096),
                 ("k262144", 262144)]:
        const(x, v)
    node("Less", [cp, "zero"], "deleted")
    node("Less", [cp, "b80"], "one_byte"), node("Less", [cp, "b800"], "two_bytes")
    node("Less", [cp, "b10000"], "three_bytes")
    node("Div", [cp, "k64"], "shift_6"), node("Div", [cp, "k4096"], "shift_12")
    node("Div", [cp, "k262144"], "shift_18")
    for shifted in ("code_point", "shift_6", "shift_12"):
        node("Mod", [shifted, "k64"], f"{shifted}_low")
        node("Add", [f"{shifted}_low", "b80"], f"{shifted}_cont")
    node("Add", ["shift_6", "c0"], "lead_2"), node("Add", ["shift_12", "e0"], "lead_3")
    node("Add", ["shift_18", "f0"], "lead_4")
    node("Where", ["three_bytes", "lead_3", "lead_4"], "lead_34")
    node("Where", ["two_bytes", "lead_2", "lead_34"], "lead_234")
    node("Where", ["one_byte", cp, "lead_234"], "lead")
    node("Where", ["three_bytes", "shift_6_cont", "shift_12_cont"], "second_34")
    node("Where", ["two_bytes", "code_point_cont", "second_34"], "second")
    node("Where", ["three_bytes", "code_point_cont", "shift_6_cont"], "third")
    node("Or", ["deleted", "one_byte"], "no_second")
    node("Or", ["deleted", "two_bytes"], "no_third")
    node("Or", ["deleted", "three_bytes"], "no_fourth")
    node("Where", ["deleted", "none", "lead"], "byte_0")
    node("Where", ["no_second", "none", "second"], "byte_1")
    node("Where", ["no_third", "none", "third"], "byte_2")
    node("Where", ["no_fourth", "none", "code_point_cont"], "byte_3")
    const("last_axis", [-1])
    for k in range(4):
        node("Unsqueeze", [f"byte_{k}", "last_axis"], f"byte_{k}_col")
    node("Concat", [f"byte_{k}_col" for k in range(4)], "utf8", axis=-1)  # (R, P, 4)
    const("bytes", [bytes([b]) for b in range(256)] + [b""])
    node("Gather", ["bytes", "utf8"], "byte_strings")
    const("nothing", ""), const("byte_axis", 2), const("part_axis", 1)
    node("StringJoin", ["byte_strings", "nothing", "byte_axis"], "decoded", domain=_CONTRIB)
    node("Where", ["is_ref", "decoded", "parts"], "pieces")
    node("StringJoin", ["pieces", "nothing", "part_axis"], "joined", domain=_CONTRIB)
    out = node("Slice", ["joined", "row_zero", "but_spare"], "unescaped")
    return nodes, name(out)
