"""Facts of Unicode normalisation (NFC) as tables, from Python's `unicodedata`.

ftfy, in OpenAI's text cleaning, ends with NFC. Graph exporters that cannot
call `unicodedata` rewrite text with these tables instead.

Example:
    >>> nfc_singletons()["\\u0387"]  # GREEK ANO TELEIA -> MIDDLE DOT
    '·'
    >>> nfc_pairs()["e\\u0301"]
    'é'
"""

import functools
import unicodedata

_LAST_CODE_POINT = 0x2FFFF  # the planes with assigned letters and marks (BMP, SMP, SIP)


def _characters():
    return (chr(c) for c in range(0x80, _LAST_CODE_POINT + 1) if not 0xD800 <= c <= 0xDFFF)


@functools.cache
def nfc_singletons():
    """`{character: NFC(character)}` for every character NFC changes on its own."""
    return {c: n for c in _characters() if (n := unicodedata.normalize("NFC", c)) != c}


@functools.cache
def nfc_pairs():
    """`{starter + mark: composite}`: NFC's primary compositions of two characters."""
    pairs = {}
    for c in _characters():
        parts = unicodedata.decomposition(c).split()
        if len(parts) != 2 or parts[0].startswith("<"):
            continue
        pair = "".join(chr(int(p, 16)) for p in parts)
        if unicodedata.normalize("NFC", pair) == c:
            pairs[pair] = c
    return pairs
