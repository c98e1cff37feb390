"""Pydantic records: what goes into the stores and what comes out.

Records are plain detached values, safe to keep after the session that produced them is
gone. Input models validate everything PostgreSQL would choke on (see `validation`), so a
bad value fails at the edge with a message, never as a driver error mid-transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from chad_memory.validation import MAX_ACTOR_LENGTH, check_actor, check_json, check_text
from chad_memory.vocabulary import MessageRole, RunStatus, StepStatus

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
ShortText = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(check_text)]
Actor = Annotated[
    str, Field(min_length=1, max_length=MAX_ACTOR_LENGTH), AfterValidator(check_actor)
]
JsonValue = Annotated[Any, AfterValidator(check_json)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
UtcDatetime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_as_utc)]
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


# Runs ---------------------------------------------------------------------------------


class RunFields(Input):
    """What a client may say about a new run; the HTTP body is exactly this."""

    name: ShortText | None = None
    agent: ShortText | None = None
    status: RunStatus = "pending"
    trace_id: ShortText | None = None
    thread_id: uuid.UUID | None = None
    request_payload: JsonValue | None = None
    result: JsonValue | None = None
    error: SafeText | None = None
    metadata: JsonObject = Field(default_factory=dict)
    tags: list[ShortText] = Field(default_factory=list, max_length=64)
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None


class RunCreate(RunFields):
    """A run as the library stores it: the fields plus who owns it and how it is keyed."""

    id: uuid.UUID | None = None
    actor: Actor
    idempotency_key: ShortText | None = None


class RunUpdate(Input):
    """A partial update: only the fields that are set are written.

    status, metadata and tags are columns that cannot be null: leave them out to keep
    them, an explicit null is refused (422), and the OpenAPI document shows them
    without null (SkipJsonSchema).
    """

    name: ShortText | None = None
    agent: ShortText | None = None
    status: RunStatus | SkipJsonSchema[None] = None
    thread_id: uuid.UUID | None = None
    result: JsonValue | None = None
    error: SafeText | None = None
    metadata: JsonObject | SkipJsonSchema[None] = None
    tags: Annotated[list[ShortText], Field(max_length=64)] | SkipJsonSchema[None] = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None

    @field_validator("status", "metadata", "tags")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only on values the caller sent: the None default means "leave it".
        if value is None:
            raise ValueError("may be left out, but cannot be null")
        return value


class RunSummary(Record):
    """A run without its payloads (request_payload, result, error): what lists show."""

    id: uuid.UUID
    actor: str
    name: str | None
    agent: str | None
    status: RunStatus
    trace_id: str | None
    idempotency_key: str | None
    thread_id: uuid.UUID | None
    metadata: dict[str, Any] = _metadata_field
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class RunRecord(RunSummary):
    """A run with everything, payloads included."""

    request_payload: Any | None
    result: Any | None
    error: str | None


class RunFilterFields(Input):
    """Filters on runs a client may use; the API's query model extends this one.

    A field named after a `runs` column filters by equality with no other code
    (chad_memory.stores.run_filters); other kinds of filter get one entry there, and a
    field without a rule fails at import, so no filter can be silently ignored.

    `metadata` matches runs whose metadata contains the object (jsonb `@>`); `tags_any`
    runs with at least one of the tags, `tags_all` runs with every one. Duration is
    completed_at - started_at (runs without both never match a duration bound); cost is
    the sum of the run's LLM call costs (a run without costs counts as 0). Lower bounds
    are inclusive, upper bounds exclusive, as with created_after / created_before.
    """

    status: RunStatus | None = None
    name: ShortText | None = None
    agent: ShortText | None = None
    thread_id: uuid.UUID | None = None
    trace_id: ShortText | None = None
    # An OTLP conversation (gen_ai.conversation.id / session.id); needs `actor`, since
    # conversations are named per actor (see chad_memory.stores.traces).
    conversation_id: ShortText | None = None
    tag: ShortText | None = None
    tags_any: Annotated[list[ShortText], Field(min_length=1, max_length=64)] | None = None
    tags_all: Annotated[list[ShortText], Field(min_length=1, max_length=64)] | None = None
    metadata: JsonObject | None = None
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None
    min_duration_ms: Milliseconds | None = None
    max_duration_ms: Milliseconds | None = None
    min_cost_usd: Cost | None = None
    max_cost_usd: Cost | None = None


class RunFilter(RunFilterFields):
    """Filters for listing runs; every one narrows, none can widen past `actor`."""

    actor: Actor | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, in the order the list defines; `next_cursor` is None on the
    last page."""

    items: list[T]
    # Filled only when the caller asked for it (e.g. `list_run_summaries(with_total=True)`).
    total: int | None = None
    next_cursor: str | None = None


# Steps --------------------------------------------------------------------------------


class StepFields(Input):
    """A step as a client describes it; the run comes from the path (HTTP) or the caller."""

    step_index: Int32
    parent_step_id: uuid.UUID | None = None
    name: ShortText | None = None
    type: ShortText | None = None
    status: StepStatus = "succeeded"
    input: JsonValue | None = None
    output: JsonValue | None = None
    error: SafeText | None = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    duration_ms: Milliseconds | None = None
    metadata: JsonObject = Field(default_factory=dict)


class StepCreate(StepFields):
    id: uuid.UUID | None = None
    run_id: uuid.UUID


class StepRecord(Record):
    id: uuid.UUID
    run_id: uuid.UUID
    step_index: int
    parent_step_id: uuid.UUID | None
    name: str | None
    type: str | None
    status: StepStatus
    input: Any | None
    output: Any | None
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: float | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime


# Artifacts ----------------------------------------------------------------------------


class ArtifactFields(Input):
    step_id: uuid.UUID | None = None
    name: ShortText
    content_type: ShortText | None = None
    size_bytes: Int64 | None = None
    url: Annotated[str, Field(max_length=4096), AfterValidator(check_text)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    metadata: JsonObject = Field(default_factory=dict)


class ArtifactCreate(ArtifactFields):
    id: uuid.UUID | None = None
    run_id: uuid.UUID


class ArtifactRecord(Record):
    id: uuid.UUID
    run_id: uuid.UUID
    step_id: uuid.UUID | None
    name: str
    content_type: str | None
    size_bytes: int | None
    url: str | None
    sha256: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime


# LLM calls ----------------------------------------------------------------------------


class LLMCallFields(Input):
    """An LLM call. Token counts follow OpenTelemetry GenAI: prompt_tokens counts every
    input token, cached_tokens (cache reads) and cache_write_tokens included;
    completion_tokens counts every output token, reasoning_tokens included. Without a
    cost_usd, the store computes one from the price table (chad_memory.prices)."""

    step_id: uuid.UUID | None = None
    provider: ShortText | None = None
    model: ShortText | None = None
    prompt_tokens: TokenCount = 0
    completion_tokens: TokenCount = 0
    # None means prompt + completion, the usual case; providers that bill extra say so.
    total_tokens: TokenCount | None = None
    cached_tokens: TokenCount = 0
    cache_write_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    cost_usd: Cost | None = None
    latency_ms: Milliseconds | None = None
    status: RunStatus = "succeeded"
    error: SafeText | None = None
    request: JsonValue | None = None
    response: JsonValue | None = None

    @model_validator(mode="after")
    def _total_fits(self) -> Self:
        # The default total is prompt + completion, which must fit the integer column too.
        if self.total_tokens is None and self.prompt_tokens + self.completion_tokens > 2**31 - 1:
            raise ValueError("prompt_tokens + completion_tokens exceeds 2147483647")
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            raise ValueError(
                "cached_tokens + cache_write_tokens exceeds prompt_tokens; prompt_tokens "
                "counts every input token, cached ones included (OpenTelemetry GenAI)"
            )
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError(
                "reasoning_tokens exceeds completion_tokens; completion_tokens counts "
                "every output token, reasoning ones included"
            )
        return self


class LLMCallCreate(LLMCallFields):
    id: uuid.UUID | None = None
    run_id: uuid.UUID


class LLMCallRecord(Record):
    id: uuid.UUID
    run_id: uuid.UUID
    step_id: uuid.UUID | None
    provider: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Money | None
    cost_source: Literal["client", "table"] | None
    price_id: uuid.UUID | None
    price_ref: str | None
    latency_ms: float | None
    status: RunStatus
    error: str | None
    request: Any | None
    response: Any | None
    created_at: datetime


class ModelStats(BaseModel):
    provider: str | None
    model: str | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Money
    latency_ms_mean: float | None


class RunTotals(BaseModel):
    """What a list of runs shows per row: `get_run_stats` without durations or latencies."""

    run_id: uuid.UUID
    step_count: int
    llm_call_count: int
    total_tokens: int
    cost_usd: Decimal


class RunStats(BaseModel):
    run_id: uuid.UUID
    step_count: int
    llm_call_count: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Money
    # Wall time of the run: completed_at - started_at, else the span of its steps.
    duration_ms: float | None
    step_duration_ms_total: float | None
    latency_ms_mean: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_max: float | None
    by_model: list[ModelStats]


# Embeddings ---------------------------------------------------------------------------


class EmbeddingFields(Input):
    namespace: ShortText = "default"
    source_type: ShortText | None = None
    source_id: ShortText | None = None
    run_id: uuid.UUID | None = None
    content: SafeText | None = None
    embedding: list[Number] = Field(min_length=1)
    metadata: JsonObject = Field(default_factory=dict)


class EmbeddingCreate(EmbeddingFields):
    id: uuid.UUID | None = None
    actor: Actor


class EmbeddingRecord(Record):
    """An embedding's row without the vector itself, which callers rarely want back."""

    id: uuid.UUID
    actor: str
    namespace: str
    source_type: str | None
    source_id: str | None
    run_id: uuid.UUID | None
    content: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime


class NamespaceCount(BaseModel):
    namespace: str
    count: int


class SearchHit(EmbeddingRecord):
    # 1 - cosine distance: 1.0 is the same direction, 0 orthogonal, -1 opposite.
    score: float


# Threads and messages -----------------------------------------------------------------
# No actor, id or timestamps in these inputs: the owner is who calls (the API's actor, the
# library's `actor=` argument), ids and times come from the store.


class ThreadCreate(Input):
    agent_type: ShortText
    # None means "New {agent_type} conversation".
    title: ShortText | None = None
    model: ShortText | None = None
    provider: ShortText | None = None
    metadata: JsonObject = Field(default_factory=dict)


class ThreadUpdate(Input):
    """A partial update of the fields a person edits; omitted fields stay as they are.

    Both may be left out but not set to null; the OpenAPI document shows them without
    null (SkipJsonSchema), as for RunUpdate.
    """

    title: ShortText | SkipJsonSchema[None] = None
    metadata: JsonObject | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ThreadUpdate:
        # Both columns are NOT NULL: an explicit null is a mistake, not "clear it".
        for name in ("title", "metadata"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; omit it to leave it unchanged")
        return self


class ThreadRecord(Record):
    id: uuid.UUID
    actor: str
    title: str
    agent_type: str
    model: str | None
    provider: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime
    updated_at: datetime


class MessageCreate(Input):
    role: MessageRole
    content: SafeText | None = None
    tool_calls: list[JsonObject] = Field(default_factory=list, max_length=1024)
    artifact_data: JsonValue | None = None
    metadata: JsonObject = Field(default_factory=dict)


class MessageRecord(Record):
    id: uuid.UUID
    thread_id: uuid.UUID
    role: MessageRole
    content: str | None
    tool_calls: list[Any]
    artifact_data: Any | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime


# Prices and usage ---------------------------------------------------------------------

# Per million tokens: model_prices columns are numeric(20, 10).
PricePerMillion = Annotated[
    Decimal, Field(ge=0, lt=Decimal("1e10"), decimal_places=10, allow_inf_nan=False)
]
ModelPattern = Annotated[
    str,
    Field(min_length=1, max_length=512, pattern=r"^[^\s]+$"),
    AfterValidator(check_text),
]


class ModelPriceCreate(Input):
    """A price for a model (or a `*` pattern such as "gpt-4o*"), per million tokens, in
    force from `starts_at`. Cache prices left out cost the input price."""

    provider: ShortText | None = None
    model_pattern: ModelPattern
    starts_at: UtcDatetime
    input_mtok: PricePerMillion
    cached_input_mtok: PricePerMillion | None = None
    cache_write_mtok: PricePerMillion | None = None
    output_mtok: PricePerMillion


class ModelPriceRecord(Record):
    id: uuid.UUID
    # None: an operator-wide price, for every actor.
    actor: str | None
    provider: str | None
    model_pattern: str
    starts_at: datetime
    input_mtok: Money
    cached_input_mtok: Money | None
    cache_write_mtok: Money | None
    output_mtok: Money
    created_at: datetime


UsageGroupBy = Literal["model", "provider", "day", "hour", "run_name"]


class UsageRow(BaseModel):
    """One group of LLM calls. Percentiles come from quarter-octave latency buckets (each
    is the mean latency of the bucket holding that rank: within 19% of the exact value)."""

    # The group's value per dimension, e.g. {"model": "gpt-4o", "day": "2026-11-29"};
    # null: calls without a model / provider, runs without a name.
    group: dict[str, str | None]
    calls: int
    runs: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Money
    # Calls that have a cost; the others (no price known) add nothing to cost_usd.
    costed_calls: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    # Share of calls with status "failed", 0..1.
    error_share: float


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    group_by: list[UsageGroupBy]
    # The window: calls with created_at in [from, to).
    from_: datetime = Field(alias="from")
    to: datetime
    rows: list[UsageRow]
