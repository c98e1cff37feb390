"""The building blocks of every record: field types with their validation rules (text,
JSON, UTC timestamps, numbers that are never booleans, exact money) and the two base
classes, `Input` (refuses unknown fields) and `Record` (reads ORM rows or dicts).

Separate from the records so that one definition of each rule serves them all, and so
the API's own schemas can build on the same types without importing any record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
)

from chad_memory.validation import MAX_ACTOR_LENGTH, check_actor, check_json, check_text

# asyncpg writes these two instants as PostgreSQL -infinity / infinity and reads those
# back as naive datetimes: storing them would not keep what was sent.
EARLIEST_INSTANT = datetime.min.replace(tzinfo=UTC)
LATEST_INSTANT = datetime.max.replace(tzinfo=UTC)
_RANGE = (
    "timestamps must lie strictly between 0001-01-01T00:00:00Z and "
    "9999-12-31T23:59:59.999999Z (the storable range)"
)


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted, so storage is uniform.

    One rule for every timestamp field, input and filter alike: what is stored (or
    compared) is exactly the instant sent, or the value is refused.
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"datetime is out of range once converted to UTC: {_RANGE}") from exc
    if utc in (EARLIEST_INSTANT, LATEST_INSTANT):
        raise ValueError(f"datetime is out of range: {_RANGE}")
    return utc


def not_bool(value: Any) -> Any:
    """JSON's true/false are not numbers; pydantic's lax mode would read them as 1/0."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _not_a_number(value: Any) -> Any:
    """Timestamps are ISO 8601 text (or datetimes): pydantic would also take 1700000000
    as epoch seconds, which the OpenAPI document (format: date-time) does not allow."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise ValueError("timestamps must be ISO 8601 strings, not numbers")
    if isinstance(value, str | bytes):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if text.strip().lstrip("+-").replace(".", "", 1).isdigit():
            raise ValueError("timestamps must be ISO 8601 strings, not numbers")
    return value


SafeText = Annotated[str, AfterValidator(check_text)]
# A b-tree index entry holds at most 2,704 bytes (a third of an 8 kB page); PostgreSQL
# refuses a longer one (SQLSTATE 54000), and text made of four-byte characters does not
# compress. Short texts are keys next to an actor (255 characters, up to 1,020 bytes):
# alone (a run's name, trace_id, idempotency key; an embedding's namespace, source id)
# at most 1,536 bytes, any 512 characters of the Basic Multilingual Plane; two in one key
# (an LLM call's provider and model in the usage rollups, a price's provider and model
# pattern) at most 768 bytes each. Worst cases, measured by the tests, fit.
MAX_TEXT_BYTES = 1536
MAX_KEY_TEXT_BYTES = 768


def utf8_at_most(limit: int) -> AfterValidator:
    """A validator: at most `limit` bytes in UTF-8 (put after the field's own constraints,
    so the JSON schema keeps them)."""

    def check(value: str) -> str:
        size = len(value.encode("utf-8"))
        if size > limit:
            raise ValueError(
                f"is {size} bytes in UTF-8; at most {limit} bytes fit the index it is part of"
            )
        return value

    return AfterValidator(check)


ShortText = Annotated[
    str,
    Field(min_length=1, max_length=512),
    AfterValidator(check_text),
    utf8_at_most(MAX_TEXT_BYTES),
]
# Provider and model names, which share one index key with each other and an actor.
KeyText = Annotated[
    str,
    Field(min_length=1, max_length=512),
    AfterValidator(check_text),
    utf8_at_most(MAX_KEY_TEXT_BYTES),
]
Actor = Annotated[
    str, Field(min_length=1, max_length=MAX_ACTOR_LENGTH), AfterValidator(check_actor)
]
JsonValue = Annotated[Any, AfterValidator(check_json)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
UtcDatetime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_as_utc)]
# ISO 8601 text only, its zone (or lack of one) left for the caller to judge.
IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
# For a timestamp that must carry its own offset (AwareDatetime): text, never epoch numbers.
IsoText = BeforeValidator(_not_a_number)
# Numbers in bodies are never booleans. Floats are strict (ints are still taken, strings
# and booleans are not); integers refuse booleans and keep pydantic's other conversions.
# Put an integer's bounds before NotBool, so the OpenAPI document states them.
NotBool = BeforeValidator(not_bool)
Int32 = Annotated[int, Field(ge=0, le=2**31 - 1), NotBool]
Int64 = Annotated[int, Field(ge=0, le=2**63 - 1), NotBool]
Number = Annotated[float, Strict()]
# Bounded (about 31 years) so sums and averages over many rows stay finite in float8.
MAX_MILLISECONDS = 1e12
Milliseconds = Annotated[Number, Field(ge=0, le=MAX_MILLISECONDS, allow_inf_nan=False)]
TokenCount = Int32
# What llm_calls.cost_usd (numeric(30, 20)) holds exactly; more decimals are refused
# rather than rounded.
COST_DECIMALS = 20
Cost = Annotated[
    Decimal,
    Field(ge=0, lt=Decimal("1e10"), decimal_places=COST_DECIMALS, allow_inf_nan=False),
]


# Money arithmetic in Python runs in this context: the default one keeps 28 digits, fewer
# than a numeric(30, 20) cost or a sum of them has, and would round silently.
EXACT = Context(prec=100, rounding=ROUND_HALF_EVEN, traps=[Inexact, InvalidOperation])


def tidy_decimal(value: Decimal) -> Decimal:
    """The same number without the column's trailing zeros (numeric(30, 20) reads 0.5 back
    as 0.50000000000000000000) and without a positive exponent (100, not 1E+2)."""
    value = value.normalize(EXACT)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return value.quantize(Decimal(1), context=EXACT)
    return value


def plain_decimal(value: Decimal) -> str:
    """A decimal as plain digits: "0.000000001", never "1E-9" (nor "0E-8"), which is
    also the only string form the API accepts back."""
    return format(tidy_decimal(value), "f")


# Money in output records: exact, tidied, and serialised as a plain decimal string.
Money = Annotated[
    Decimal,
    AfterValidator(tidy_decimal),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]

_metadata_field: Any = Field(
    default_factory=dict, validation_alias=AliasChoices("metadata_", "metadata")
)


class Record(BaseModel):
    """Output records are read from ORM rows (`metadata_` attribute) or dicts alike."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class Input(BaseModel):
    """Input models refuse unknown fields, so a typo is an error rather than lost data."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
