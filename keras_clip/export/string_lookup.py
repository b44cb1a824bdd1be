"""Table rewrites of substrings as ONNX nodes: a thousand replacements in a dozen nodes.

One `StringECMARegexReplace` node per replacement is slow when the table is
large. Here the substrings matching `pattern` are marked and split off
(`StringSplit`), looked up in ONNX-ML `LabelEncoder`s (the replacement, and
whether the piece is a key) and joined again (`StringJoin` of
onnxruntime-extensions).

Example:
    >>> nodes, out = lookup_nodes("texts", "nfc", "e\\xcc\\x81", {"e\\u0301": "\\u00e9"})
"""

import numpy as np

_CONTRIB = "ai.onnx.contrib"
_MARK = "\uf3fb"  # splits a matched piece off its text (private use)


def lookup_nodes(source, tag, pattern, table):
    """Nodes replacing each match of `pattern` in `source` `(rows,)` by `table[match]`.

    Args:
        source: name of a string tensor `(rows,)`.
        tag: prefix for the names of the nodes' tensors (unique per call).
        pattern: ECMAScript pattern (on UTF-8 bytes) matching the keys; a match
            that is not a key is left as it is.
        table: `{substring: replacement}`.

    Returns:
        (nodes, name of the rewritten `(rows,)` string tensor).
    """
    from onnx import TensorProto, helper, numpy_helper

    def name(x):
        return f"{tag}_{x}"

    def strings(x, values, shape):
        data = [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
        return helper.make_node("Constant", [], [name(x)],
                                value=helper.make_tensor(name(x), TensorProto.STRING, shape, data))

    def ints(x, values):
        return helper.make_node("Constant", [], [name(x)],
                                value=numpy_helper.from_array(np.asarray(values, np.int64), name(x)))

    n = helper.make_node
    keys = list(table)
    return [
        strings("pattern", [pattern], [1]), strings("rewrite", [f"{_MARK}$&{_MARK}"], [1]),
        strings("spare", ["x"], [1]), strings("nothing", [""], []),
        ints("row_zero", [0]), ints("but_spare", [-1]), ints("part_axis", 1),
        n("StringECMARegexReplace", [source, name("pattern"), name("rewrite")], [name("marked")],
          domain=_CONTRIB),
        # One spare row: StringJoin crashes on an empty batch (0.15.2).
        n("Concat", [name("marked"), name("spare")], [name("with_spare")], axis=0),
        n("StringSplit", [name("with_spare")], [name("parts"), name("counts")], delimiter=_MARK),
        n("LabelEncoder", [name("parts")], [name("found")], domain="ai.onnx.ml",
          keys_strings=keys, values_strings=[table[k] for k in keys], default_string=""),
        n("LabelEncoder", [name("parts")], [name("is_key_int")], domain="ai.onnx.ml",
          keys_strings=keys, values_int64s=[1] * len(keys), default_int64=0),
        n("Cast", [name("is_key_int")], [name("is_key")], to=TensorProto.BOOL),
        n("Where", [name("is_key"), name("found"), name("parts")], [name("pieces")]),
        n("StringJoin", [name("pieces"), name("nothing"), name("part_axis")], [name("joined")],
          domain=_CONTRIB),
        n("Slice", [name("joined"), name("row_zero"), name("but_spare")], [name("out")]),
    ], name("out")
