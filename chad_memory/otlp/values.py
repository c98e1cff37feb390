"""OTLP values as JSON: AnyValue, key-value lists, ids and timestamps.

Every AnyValue kind has a JSON form, so attributes are kept as sent: strings, booleans,
64-bit integers and doubles as themselves, arrays as lists, key-value lists as objects,
and bytes as base64 text (JSON has no bytes). A non-finite double (NaN, infinity) has no
JSON form: the span holding one is refused (partial success), never stored altered.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from chad_memory.errors import InvalidInputError

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
