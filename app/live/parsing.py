"""Reading a live comment as order lines: keyword, then codes each with an optional quantity.

"CF A12", "cf a12 x2", "CF A12 2", "CF A12 B3", "CFA12", "CF A12*2", "CF A12 x 2", Thai and
full-width digits ("CF A12 ๒"), and a trailing polite word ("CF A12 ค่ะ") all read as orders.
Codes are matched against the session's own codes (longest first), so "CF A12 B3" is two
lines only when both codes exist, and a comment that reads as anything else is not an order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

MAX_QUANTITY = 999
# Between codes: spaces and the joiners buyers type ("CF A12, B3", "CF A12+B3").
_SEPARATORS = frozenset(" \t\r\n,+/&;")
_QUANTITY_MARKS = frozenset("X*\u00d7")  # x, *, the multiplication sign
_DIGITS = re.compile(r"[0-9]+")
# Thai digits (U+0E50 to U+0E59) become ASCII; NFKC folds full-width letters and digits.
_THAI_ZERO = 0x0E50


@dataclass(frozen=True, slots=True)
class ParsedLine:
    code: str
    quantity: int


def normalize_code(code: str) -> str:
    return unicodedata.normalize("NFKC", code).strip().upper()


def _normalize(message: str) -> str:
    text = unicodedata.normalize("NFKC", message)
    text = "".join(
        chr(ord("0") + ord(c) - _THAI_ZERO) if _THAI_ZERO <= ord(c) <= _THAI_ZERO + 9 else c
        for c in text
    )
    return text.upper()


def _is_word(char: str) -> bool:
    """Latin letters and digits: what codes and quantities are made of."""
    return char.isascii() and char.isalnum()


def parse_comment(message: str, keyword: str, codes: Collection[str]) -> list[ParsedLine]:
    """The order lines a comment asks for (a code asked twice is one line, quantities summed);
    empty when the comment is not an order."""
    text = _normalize(message).strip()
    key = normalize_code(keyword)
    known = sorted({normalize_code(c) for c in codes if c}, key=len, reverse=True)
    if not key or not known or not text.startswith(key):
        return []
    pos = len(key)
    found: dict[str, int] = {}
    while True:
        while pos < len(text) and text[pos] in _SEPARATORS:
            pos += 1
        code = next((c for c in known if text.startswith(c, pos)), None)
        if code is None:
            break
        pos += len(code)
        quantity, pos = _quantity(text, pos, known)
        if quantity is None:
            return []
        found[code] = found.get(code, 0) + quantity
    # What is left may be words with no Latin letter or digit ("ค่ะ", "🙏", "!"), never a
    # code or number that could not be read.
    if not found or any(_is_word(c) for c in text[pos:]):
        return []
    if any(quantity > MAX_QUANTITY for quantity in found.values()):
        return []
    return [ParsedLine(code, quantity) for code, quantity in found.items()]


def _quantity(text: str, pos: int, known: list[str]) -> tuple[int | None, int]:
    """(quantity, position after it) following a code: 1 when none is written; None when what
    follows the code cannot be read (a code glued to more digits, "x" with no number)."""
    if pos < len(text) and text[pos].isdigit():
        return None, pos  # "A123" is not code A12 with 3: too easy to misread
    start = pos
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos < len(text) and text[pos] in _QUANTITY_MARKS:
        # "x1" after a space may be the next code rather than a quantity.
        if pos > start and any(text.startswith(c, pos) for c in known):
            return 1, start
        mark = pos
        pos += 1
        while pos < len(text) and text[pos] == " ":
            pos += 1
        digits = _DIGITS.match(text, pos)
        if digits is None:
            return (None, mark) if mark == start else (1, start)
        value, end = int(digits.group()), digits.end()
    elif pos > start and pos < len(text) and text[pos].isdigit():
        digits = _DIGITS.match(text, pos)
        assert digits is not None
        value, end = int(digits.group()), digits.end()
    else:
        return 1, start
    if end < len(text) and _is_word(text[end]):
        return None, end  # "2B" : neither a quantity nor a code
    if value < 1:
        return None, end
    return value, end
