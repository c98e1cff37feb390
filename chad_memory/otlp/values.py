"""OTLP values as JSON (AnyValue, key-value lists, ids, timestamps), and attribute values
read as what a column holds: text, a whole number, a decimal.

Every AnyValue kind has a JSON form, so attributes are kept as sent: strings, booleans,
64-bit integers and doubles as themselves, arrays as lists, key-value lists as objects,
and bytes as base64 text (JSON has no bytes). A non-finite double (NaN, infinity) has no
JSON form: the span holding one is refused (partial success), never stored altered.

A fact read from an attribute (a token count, a cost, a model name) follows one rule
whatever encoding carried it: OTLP/JSON sends 64-bit integers as decimal text, some
instrumentations send counts as text or doubles. A value that is not what its column
holds refuses the span with the attribute's name; nothing is read as 0 or dropped.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from chad_memory.errors import InvalidInputError
from chad_memory.validation import quoted

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def any_value(value: AnyValue, where: str) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        if not math.isfinite(number):
            raise InvalidInputError(f"{where} is {number}, which JSON cannot hold")
        return number
    if kind == "array_value":
        return [any_value(v, where) for v in value.array_value.values]
    if kind == "kvlist_value":
        return key_values(value.kvlist_value.values, where)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def key_values(items: Iterable[KeyValue], where: str) -> dict[str, Any]:
    """Attributes as a flat object keyed as sent ("gen_ai.request.model": ...)."""
    return {kv.key: any_value(kv.value, f"{where} {kv.key!r}") for kv in items}


def hex_id(raw: bytes, size: int, what: str) -> str:
    """A trace (16 bytes) or span (8 bytes) id as lowercase hex; all-zero ids are invalid."""
    if len(raw) != size or not any(raw):
        raise InvalidInputError(f"{what} must be {size} bytes and not all zero")
    return raw.hex()


def timestamp(unix_nano: int) -> datetime | None:
    """A span time (nanoseconds since the epoch) as UTC; 0 means "not set".

    PostgreSQL keeps microseconds; the exact nanoseconds stay in the step's metadata.
    """
    if unix_nano == 0:
        return None
    return _EPOCH + timedelta(microseconds=unix_nano // 1000)


# A whole number as text: ASCII digits (str.isdigit() also takes superscripts, which
# int() refuses), an optional sign, at most int64's 19 digits.
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]{1,19}\s*", re.ASCII)
# A decimal as text: plain or with an exponent; its range and scale are the column's
# rule (chad_memory.schemas.Cost), checked after.
_DECIMAL_TEXT = re.compile(
    r"\s*[+-]?([0-9]{1,40}(\.[0-9]{0,40})?|\.[0-9]{1,40})([eE][+-]?[0-9]{1,4})?\s*", re.ASCII
)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a key-value list"
    if isinstance(value, bool):
        return "a boolean"
    return quoted(repr(value))


def whole_number(value: Any, where: str) -> int | None:
    """A count from any encoding: an int, a double with no fraction, or integer text.

    None stays None (not sent). Anything else (a fraction, a boolean, text that is not an
    integer, an array) raises InvalidInputError: a count is never guessed as 0. Range
    (negative, past int32) is the record model's rule.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    raise InvalidInputError(f"{where} must be a whole number, not {_kind(value)}")


def decimal_number(value: Any, where: str) -> Decimal | None:
    """A cost from any encoding: an int, a finite double (through its shortest text, so
    0.00036 is 0.00036) or decimal text; InvalidInputError for anything else."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))  # a double here is finite (any_value refuses the rest)
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value.strip())
    raise InvalidInputError(f"{where} must be a decimal number, not {_kind(value)}")


def text_value(value: Any, where: str) -> str | None:
    """Text a column holds (a name, a model, an id): a string, or a number or boolean
    written as text; an array or key-value list is not text and raises."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        raise InvalidInputError(f"{where} must be text, not {_kind(value)}")
    return str(value)
