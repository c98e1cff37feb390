"""Input checks that PostgreSQL would otherwise fail on, or silently accept wrongly.

PostgreSQL text and jsonb cannot hold NUL (U+0000) and asyncpg cannot encode lone
surrogates; both would surface as driver errors mid-transaction. NaN and infinities are
valid floats in Python but poison sums, costs and vector distances. We reject all of
these up front with a message that says where the bad value is.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chad_memory.errors import EmbeddingDimensionError, InvalidInputError

MAX_JSON_DEPTH = 64
# Values (objects, arrays, strings, numbers, booleans, nulls) in one JSON field. Checking
# is linear in this count and the request body limit bounds the number of fields, so the
# two together bound the work one request can cause.
MAX_JSON_NODES = 100_000
# Longest key or echoed text quoted in an error message; the rest is elided.
MAX_QUOTED_CHARS = 40


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None if it can."""
    if "\x00" in value:
        return "contains a NUL (\\u0000) character, which PostgreSQL text cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid UTF-8"
    return None


def check_text(value: str, where: str = "text") -> str:
    problem = text_problem(value)
    if problem:
        raise InvalidInputError(f"{where} {problem}")
    return value


MAX_ACTOR_LENGTH = 255


def check_actor(value: str, where: str = "actor") -> str:
    """The actor rule, for every place an actor enters: 1 to 255 characters of storable text.

    Used by the `Actor` field of the input models, the stores' `actor=` arguments, API
    key creation and the trusted-header mode, so all four accept exactly the same names.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ACTOR_LENGTH:
        raise InvalidInputError(f"{where} must be 1 to {MAX_ACTOR_LENGTH} characters long")
    return check_text(value, where)


def quoted(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """`text` cut to `limit` characters for an error message: input is never echoed whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class _Bad(Exception):
    """A problem found deep in a value; each frame adds its key while it unwinds.

    The path is built only for the one bad node. Building it for every node as the walk
    went made checking a wide value under long keys quadratic (a 10 MB body held the
    worker for about a minute).
    """

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: list[str | int] = []


def _scalar_problem(value: Any) -> str | None:
    """Why a non-container cannot be stored as JSON(B), or None."""
    kind = type(value)
    if kind is str:
        return text_problem(value) if "\x00" in value or not value.isascii() else None
    if kind is float:
        return None if math.isfinite(value) else f"holds a non-finite number ({value})"
    if value is None or kind is int or kind is bool:
        return None
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"holds a non-finite number ({value})"
    if isinstance(value, Decimal):
        return None if value.is_finite() else f"holds a non-finite number ({value})"
    return f"holds a {type(value).__name__}, which is not JSON"


def _walk(value: Any, depth: int, budget: list[int]) -> None:
    """Check one container (dict, list or tuple) and its members.

    The common scalars (str, int, bool, None, float) are checked inline, without a call per
    leaf: a field may hold MAX_JSON_NODES of them.
    """
    if depth >= MAX_JSON_DEPTH and value:
        raise _Bad(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    budget[0] -= len(value)
    if budget[0] < 0:
        raise _Bad(f"holds more than {MAX_JSON_NODES:,} JSON values (MAX_JSON_NODES)")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _Bad(f"has a non-string key {quoted(repr(key))}")
            if "\x00" in key or not key.isascii():
                problem = text_problem(key)
                if problem:
                    raise _Bad(f"key {problem}")
            kind = type(item)
            if kind is str:
                if "\x00" not in item and item.isascii():
                    continue
            # item - item == 0.0 is false for NaN and +-inf
            elif (
                kind is int
                or kind is bool
                or item is None
                or (kind is float and item - item == 0.0)
            ):
                continue
            try:
                _member(item, depth, budget)
            except _Bad as bad:
                bad.path.append(key)
                raise
        return
    for i, item in enumerate(value):
        kind = type(item)
        if kind is str:
            if "\x00" not in item and item.isascii():
                continue
        elif kind is int or kind is bool or item is None or (kind is float and item - item == 0.0):
            continue
        try:
            _member(item, depth, budget)
        except _Bad as bad:
            bad.path.append(i)
            raise


def _member(item: Any, depth: int, budget: list[int]) -> None:
    """The slow path for one member: containers, non-ASCII text, and anything unusual."""
    if isinstance(item, dict | list | tuple):
        _walk(item, depth + 1, budget)
        return
    problem = _scalar_problem(item)
    if problem:
        raise _Bad(problem)


def _where(where: str, path: list[str | int]) -> str:
    """`where.a[3].b` from a path collected innermost first, long keys elided."""
    out = where
    for part in reversed(path):
        out += f"[{part}]" if isinstance(part, int) else f".{quoted(part)}"
    return out


def check_json(value: Any, where: str = "json") -> Any:
    """Refuse NUL bytes, lone surrogates, non-finite numbers, non-JSON types, nesting
    past MAX_JSON_DEPTH and more than MAX_JSON_NODES values; returns `value` unchanged.

    One pass, nothing allocated per node: the cost is linear in the value's size and
    bounded by MAX_JSON_NODES, and the error says where the bad node is.
    """
    if not isinstance(value, dict | list | tuple):
        problem = _scalar_problem(value)
        if problem:
            raise InvalidInputError(f"{where} {problem}")
        return value
    try:
        _walk(value, 0, [MAX_JSON_NODES - 1])
    except _Bad as bad:
        raise InvalidInputError(f"{_where(where, bad.path)} {bad.problem}") from None
    return value


def json_text(value: Any, where: str = "json") -> str:
    """`value` as the JSON text to store, under exactly `check_json`'s rules, checked fast.

    For bulk paths (OTLP ingest) that serialise every value anyway: the C encoder refuses
    NaN and infinities, encoding the text as UTF-8 finds lone surrogates, and only when the
    text could hold a NUL (an escaped \\u0000), be nested too deep (more brackets than
    MAX_JSON_DEPTH) or hold too many values (more commas and brackets than
    MAX_JSON_NODES) does the full `check_json` walk decide, with its message.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        check_json(value, where)  # raises with the place of the bad value
        raise InvalidInputError(f"{where} is not JSON") from None
    brackets = text.count("{") + text.count("[")
    if (
        "\\u0000" in text
        or brackets > MAX_JSON_DEPTH
        or brackets + text.count(",") + 1 > MAX_JSON_NODES
    ):
        check_json(value, where)
    return text


def json_from_text(text: str | bytes, where: str = "json") -> Any:
    """The value JSON text encodes; ValueError (its message kept) when it is not JSON.

    The one way to parse JSON that arrives inside a value (OTLP attributes that carry
    JSON, a JSON query parameter): nesting deep enough to exhaust the parser's recursion
    (about 1,000 levels) is refused here as too deep, the rule `check_json` states for
    anything past MAX_JSON_DEPTH, instead of escaping as a RecursionError.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidInputError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels") from None


# float4 limits. pgvector stores components as float4 and sums squares and products in
# float4 (VectorCosineSimilarity), so a vector must survive that arithmetic, not only
# float8's, for its cosine similarity to be a number.
FLOAT4_MAX = 3.4028234663852886e38
FLOAT4_MIN_NORMAL = 1.1754943508222875e-38
# The largest component's square must be a normal float4, else every square (and the
# norm) can be 0 and the score NaN; the norm's square must stay well inside float4 (half
# its range leaves room for float4 rounding over 16,000 terms), else it is infinite.
MIN_EMBEDDING_COMPONENT = math.sqrt(FLOAT4_MIN_NORMAL)  # about 1.08e-19
MAX_EMBEDDING_NORM = math.sqrt(FLOAT4_MAX / 2)  # about 1.3e19


def check_embedding(values: Sequence[float], dim: int, where: str = "embedding") -> list[float]:
    """A plain list of `dim` finite floats whose cosine similarity pgvector can compute,
    checked as it will be stored (float4), or a clear error before anything reaches SQL."""
    if len(values) != dim:
        raise EmbeddingDimensionError(expected=dim, got=len(values))
    out = values if isinstance(values, list) else list(values)
    try:
        # One C call over float8 values (NaN and inf propagate): a norm well inside the
        # band proves every float4 condition below, so the common case stops here.
        norm = math.hypot(*out)
    except TypeError:
        raise InvalidInputError(f"{where} must hold numbers") from None
    if MIN_EMBEDDING_COMPONENT * math.sqrt(dim) * 1.001 <= norm <= MAX_EMBEDDING_NORM * 0.999:
        return out
    stored = array("f", out)  # float4, as pgvector keeps it; out-of-range becomes inf
    if not all(math.isfinite(v) for v in (sum(out), max(stored), min(stored))):
        if not all(math.isfinite(v) for v in out):
            raise InvalidInputError(f"{where} holds NaN or an infinite value")
        raise InvalidInputError(
            f"{where} holds a component outside float4's range (+-{FLOAT4_MAX:.4g})"
        )
    largest = max(max(stored), -min(stored))
    if largest < MIN_EMBEDDING_COMPONENT:
        raise InvalidInputError(
            f"{where} is zero once stored as float4 (every component is below "
            f"{MIN_EMBEDDING_COMPONENT:.3g} in magnitude): its cosine similarity is undefined"
        )
    if math.hypot(*stored) > MAX_EMBEDDING_NORM:
        raise InvalidInputError(
            f"{where} is too long for float4 arithmetic (norm above {MAX_EMBEDDING_NORM:.3g}):"
            " its cosine similarity cannot be computed"
        )
    return out


def check_metadata_filter(value: Any, where: str = "metadata") -> dict[str, Any]:
    """A metadata filter (matched by jsonb containment, `@>`) must be a JSON object."""
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} filter must be a JSON object")
    checked: dict[str, Any] = check_json(value, where)
    return checked


def check_as_of(value: datetime | None) -> datetime | None:
    """A point in time to search at; a naive one is taken as UTC, as every timestamp the
    service accepts is (chad_memory.schemas.base.UtcDatetime)."""
    if value is None or value.utcoffset() is not None:
        return value
    return value.replace(tzinfo=UTC)
