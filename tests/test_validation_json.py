"""check_json: one walk that refuses what PostgreSQL cannot store, with the bad node's path."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from chad_memory import InvalidInputError
from chad_memory.validation import MAX_JSON_DEPTH, MAX_JSON_NODES, check_json


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


BAD: list[tuple[Any, str]] = [
    ({"a": {"b": "x\x00y"}}, "json.a.b contains a NUL"),
    ({"a\x00": 1}, "json key contains a NUL"),
    ({"a": ["ok", "\ud800"]}, r"json.a\[1\] contains a lone surrogate"),
    ({"a": [1.0, math.inf]}, r"json.a\[1\] holds a non-finite number"),
    ({"a": math.nan}, "json.a holds a non-finite number"),
    ({"a": Decimal("NaN")}, "json.a holds a non-finite number"),
    ({1: "x"}, "non-string key 1"),
    ({"a": {1, 2}}, "json.a holds a set"),
    ((1, b"x"), r"json\[1\] holds a bytes"),
    (_nested(MAX_JSON_DEPTH + 2), "nested deeper than"),
    ({"a": {"b": [0] * MAX_JSON_NODES}}, r"json.a.b holds more than 100,000 JSON values"),
    ([[0] * 60_000, [0] * 60_000], r"json\[1\] holds more than"),
    ({"k" * 10_000: {"b": "\x00"}}, r"json.kkkk\S*\.\.\. \(10000 characters\).b contains a NUL"),
]


@pytest.mark.parametrize(("value", "message"), BAD)
def test_bad_values_fail_with_their_path(value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_json(value)


GOOD: list[Any] = [
    {"a": [1, 2.5, None, True, "é ü 漢字", {"b": []}]},
    "plain",
    None,
    [],
    (1, 2),  # tuples and Decimals are fine, via the full walk
    {"a": Decimal("1.5")},
    _nested(MAX_JSON_DEPTH),
    [0] * (MAX_JSON_NODES - 1),  # the root counts too
]


@pytest.mark.parametrize("value", GOOD)
def test_good_values_pass_unchanged(value: Any) -> None:
    assert check_json(value) is value


def test_error_messages_quote_long_keys_short() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_json({"k" * 1_000_000: {"x" * 1_000_000: 1.0 * math.inf}})
    assert len(str(caught.value)) < 300
