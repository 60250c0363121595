from __future__ import annotations

import pytest

from app.live.parsing import ParsedLine, parse_comment

CODES = ["A12", "B3", "A1", "X1", "12"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("CF A12", [("A12", 1)]),
        ("cf a12", [("A12", 1)]),
        ("cf a12 x2", [("A12", 2)]),
        ("CF A12 X2", [("A12", 2)]),
        ("CF A12x2", [("A12", 2)]),
        ("CF A12 x 2", [("A12", 2)]),
        ("CF A12*2", [("A12", 2)]),
        ("CF A12 * 3", [("A12", 3)]),
        ("CF A12 2", [("A12", 2)]),
        ("CF A12 B3", [("A12", 1), ("B3", 1)]),
        ("CF A12 B3 x3", [("A12", 1), ("B3", 3)]),
        ("CF A12, B3", [("A12", 1), ("B3", 1)]),
        ("CF A12+B3", [("A12", 1), ("B3", 1)]),
        ("CFA12", [("A12", 1)]),
        ("cfa12x2", [("A12", 2)]),
        ("  CF   A12  ", [("A12", 1)]),
        ("CF A12 ๒", [("A12", 2)]),
        ("CF A12 x๓", [("A12", 3)]),
        ("\uff23\uff26 \uff21\uff11\uff12", [("A12", 1)]),  # full-width CF A12
        ("CF A12 ค่ะ", [("A12", 1)]),
        ("CF A12 🙏", [("A12", 1)]),
        ("CF A12 A12", [("A12", 2)]),
        ("CF A1 2", [("A1", 2)]),
        ("CF 12", [("12", 1)]),
        ("CF 12 3", [("12", 3)]),
        ("CF A12 X1", [("A12", 1), ("X1", 1)]),
    ],
)
def test_order_comment_forms(message: str, expected: list[tuple[str, int]]) -> None:
    assert parse_comment(message, "CF", CODES) == [ParsedLine(c, q) for c, q in expected]


@pytest.mark.parametrize(
    "message",
    [
        "",
        "CF",
        "hello",
        "สวัสดีค่ะ",
        "สนใจ CF A12",  # the keyword must come first
        "CF Z9",  # no such code in this live
        "CF A123",  # a code glued to more digits is not read as a quantity
        "CF A12 2B",
        "CF A12 x",
        "CF A12 x0",
        "CF A12 0",
        "CF A12 please",
        "CF A12 x1000",
        "C F A12",
        "A12",
    ],
)
def test_comments_that_are_not_orders(message: str) -> None:
    assert parse_comment(message, "CF", CODES) == []


def test_codes_are_the_sessions_own() -> None:
    assert parse_comment("CF A12 B3", "CF", ["A12"]) == []
    assert parse_comment("CF A12 B3", "CF", ["A12", "B3"]) == [
        ParsedLine("A12", 1),
        ParsedLine("B3", 1),
    ]
    assert parse_comment("CF A12", "CF", []) == []


def test_the_longest_code_wins() -> None:
    assert parse_comment("CFA12", "CF", ["A1", "A12"]) == [ParsedLine("A12", 1)]


def test_another_keyword() -> None:
    assert parse_comment("เอา A12", "เอา", ["A12"]) == [ParsedLine("A12", 1)]
    assert parse_comment("ORDER a12 x2", "order", ["A12"]) == [ParsedLine("A12", 2)]
    assert parse_comment("CF A12", "ORDER", ["A12"]) == []
