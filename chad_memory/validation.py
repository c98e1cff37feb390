"""Input checks that PostgreSQL would otherwise fail on, or silently accept wrongly.

PostgreSQL text and jsonb cannot hold NUL (U+0000) and asyncpg cannot encode lone
surrogates; both would surface as driver errors mid-transaction. NaN and infinities are
valid floats in Python but poison sums, costs and vector distances. We reject all of
these up front with a message that says where the bad value is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from chad_memory.errors import EmbeddingDimensionError, InvalidInputError

MAX_JSON_DEPTH = 64


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


def _plainly_valid(value: Any, depth: int = 0) -> bool:
    """True when `check_json` would surely accept `value`; False means: walk it fully.

    The full walk builds a path string for every node so an error can say where it is;
    for the common case of a clean payload that was most of the cost of validating a step
    (22 us of a ~500-byte payload in bench/ingest.py). This pass builds nothing and gives
    up on anything unusual (tuples, Decimals, subclasses), leaving the verdict and the
    message to the full walk.
    """
    if depth > MAX_JSON_DEPTH:
        return False
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or text_problem(value) is None)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plainly_valid(key, depth):
                return False
            if not _plainly_valid(item, depth + 1):
                return False
        return True
    if kind is list:
        return all(_plainly_valid(item, depth + 1) for item in value)
    if kind is float:
        return math.isfinite(value)
    return value is None or kind is int or kind is bool


def check_json(value: Any, where: str = "json", _depth: int = 0) -> Any:
    """Walk a JSON-like value and reject NUL bytes, bad surrogates and non-finite numbers."""
    if _depth == 0 and _plainly_valid(value):
        return value
    if _depth > MAX_JSON_DEPTH:
        raise InvalidInputError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, bool) or value is None or isinstance(value, int):
        pass
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where} holds a non-finite number ({value})")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInputError(f"{where} holds a non-finite number ({value})")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where} has a non-string key {key!r}")
            check_text(key, f"{where} key")
            check_json(item, f"{where}.{key}", _depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]", _depth + 1)
    else:
        raise InvalidInputError(f"{where} holds a {type(value).__name__}, which is not JSON")
    return value


def check_embedding(values: Sequence[float], dim: int, where: str = "embedding") -> list[float]:
    """A plain list of `dim` finite floats, or a clear error before anything reaches SQL."""
    if len(values) != dim:
        raise EmbeddingDimensionError(expected=dim, got=len(values))
    # Pydantic has usually made these floats already; converting 1536 of them again per
    # row was most of add_embeddings' Python time. sum() both type-checks (numbers only)
    # and, when finite, proves every element finite (NaN and inf propagate) in one C loop.
    out = values if isinstance(values, list) else list(values)
    try:
        total = sum(out)
    except TypeError:
        raise InvalidInputError(f"{where} must hold numbers") from None
    if not math.isfinite(total) and not all(math.isfinite(v) for v in out):
        raise InvalidInputError(f"{where} holds NaN or an infinite value")
    return out
