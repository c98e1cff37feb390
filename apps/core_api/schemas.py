"""What the HTTP API accepts and returns, kept apart from the library's records.

Request bodies never carry `actor` (it comes from the API key) nor `id` / `run_id` (they
come from the path or the database), and unknown fields are refused, so a client cannot
write a row it does not own. Responses are declared models, so `/openapi.json` documents
every route and a new library column is never exposed by accident.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from chad_memory.errors import InvalidInputError
from chad_memory.request_caps import (
    MAX_ITEMS_PER_REQUEST,
    MAX_LIST_LIMIT,
    MAX_OFFSET,
    MAX_SEARCH_K,
)
from chad_memory.schemas import (
    MAX_MILLISECONDS,
    ArtifactCreate,
    ArtifactFields,
    ArtifactRecord,
    EmbeddingCreate,
    EmbeddingFields,
    EmbeddingRecord,
    Input,
    JsonObject,
    LLMCallCreate,
    LLMCallFields,
    ModelPriceCreate,
    NotBool,
    Number,
    Page,
    PricePerMillion,
    RunCreate,
    RunFields,
    RunFilter,
    RunFilterFields,
    RunRecord,
    RunSummary,
    SearchHit,
    ShortText,
    StepCreate,
    StepFields,
    UtcDatetime,
)
from chad_memory.schemas import Cost as CostValue
from chad_memory.validation import check_text, json_from_text

# GET /runs stops counting `total` above this many matches unless asked for exact_total:
# an exact count reads every match, so its time grows with the actor's runs
# (BENCHMARKS.md, "Run history at scale").
TOTAL_CAP = 10_000

# A cost sent as a string is a plain decimal: the OpenAPI document says exactly what the
# server accepts (pydantic's Decimal alone would document "any string").
COST_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,20})?$"


def _plain_decimal(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(COST_PATTERN, value):
        raise ValueError('cost as a string must be a plain decimal such as "0.00036"')
    return value


CostBody = Annotated[
    CostValue,
    BeforeValidator(_plain_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1e10},
                {"type": "string", "pattern": COST_PATTERN},
            ]
        }
    ),
]


def _json_object_text(value: Any) -> Any:
    """A query parameter holding a JSON object (URL-encoded), parsed before validation."""
    if isinstance(value, str):
        try:
            value = json_from_text(value, "metadata")
        except InvalidInputError:
            raise  # JSON, nested too deep: said as such
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, URL-encoded, e.g. {"team":"search"}')
    return value


# `metadata={"team":"search"}` in a query string: rows whose metadata contains the object.
MetadataParam = Annotated[
    JsonObject,
    BeforeValidator(_json_object_text),
    WithJsonSchema(
        {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"type": "object"},
            "description": "a JSON object; matches rows whose metadata contains it (@>)",
        }
    ),
]


# Milliseconds in a query string: text parsed as a number, with the library's bounds.
QueryMilliseconds = Annotated[float, Field(ge=0, le=MAX_MILLISECONDS, allow_inf_nan=False)]


class MetadataQuery(BaseModel):
    """Query parameters of list routes that filter by metadata."""

    metadata: MetadataParam | None = None


# A price per million tokens sent as a string: a plain decimal with up to 10 decimals
# (model_prices columns are numeric(20, 10)).
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,10})?$"


def _plain_price(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(PRICE_PATTERN, value):
        raise ValueError('a price as a string must be a plain decimal such as "2.5"')
    return value


PriceBodyValue = Annotated[
    PricePerMillion,
    BeforeValidator(_plain_price),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1e10},
                {"type": "string", "pattern": PRICE_PATTERN},
            ]
        }
    ),
]


class PriceBody(ModelPriceCreate):
    """PUT /prices: prices per million tokens, as numbers or plain decimal strings."""

    input_mtok: PriceBodyValue
    cached_input_mtok: PriceBodyValue | None = None
    cache_write_mtok: PriceBodyValue | None = None
    output_mtok: PriceBodyValue


Created = TypeVar("Created", bound=BaseModel)


def adopt(body: BaseModel, record: type[Created], **extra: Any) -> Created:
    """The library's create model for a validated body, without validating it again.

    Each body is a subclass of the library's *Fields model, so every rule (NUL, depth,
    node budget, bounds) has already run once; a second validation walked every value
    of a 1,000-step batch again, and model_dump copied it. `extra` holds what the body
    cannot carry and the server has already checked: the run from the path, the actor
    from the API key.
    """
    return record.model_construct(**dict(body), **extra)


# A cost in a query string is text: documented as the plain decimal it must be.
CostQuery = Annotated[
    CostValue,
    BeforeValidator(_plain_decimal),
    WithJsonSchema({"type": "string", "pattern": COST_PATTERN}),
]


class Problem(BaseModel):
    """Every error answer: a JSON object with a `detail` (a string, or pydantic's list)."""

    detail: Any


# OpenAPI entries shared by every authenticated router.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, unknown or revoked API key"},
    # The library's InvalidInputError answers {"detail": "..."}, not pydantic's list:
    # documented as Problem (detail: either) so clients and checks expect both shapes.
    422: {"model": Problem, "description": "invalid input"},
    503: {"model": Problem, "description": "database unavailable; retry after Retry-After"},
}


# Runs ---------------------------------------------------------------------------------


class RunCreateBody(RunFields):
    """POST /runs. The owner is the caller; the id is chosen by the server."""

    thread_id: uuid.UUID | None = Field(default=None, description="one of the caller's threads")

    def to_create(self, actor: str, idempotency_key: str | None) -> RunCreate:
        # The key comes from a header stricter than the field (see IdempotencyKey).
        return adopt(self, RunCreate, actor=actor, idempotency_key=idempotency_key)


class RunDetail(RunRecord):
    """GET /runs/{id}: the run with its artifacts."""

    artifacts: list[ArtifactRecord]


class RunList(Page[RunSummary]):
    total: int = Field(
        description=(
            "runs matching the filters, ignoring limit/offset/cursor; at most "
            f"{TOTAL_CAP:,} unless exact_total=true (header X-Total-Exact says which)"
        )
    )
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; null: done"
    )


class RunListQuery(RunFilterFields):
    """GET /runs query: every run filter, plus paging. Unknown parameters (an `actor`,
    say) are refused: none can widen past the caller."""

    model_config = ConfigDict(extra="forbid")

    # Overrides: a JSON object arrives as URL-encoded text, a cost as a plain decimal, a
    # duration as text (the library's strict float would refuse "0.0" from a query).
    metadata: MetadataParam | None = None
    min_duration_ms: QueryMilliseconds | None = Field(
        default=None, description="completed_at - started_at at least this (inclusive)"
    )
    max_duration_ms: QueryMilliseconds | None = Field(
        default=None, description="completed_at - started_at below this (exclusive)"
    )
    min_cost_usd: CostQuery | None = Field(
        default=None, description="the run's LLM cost total at least this (inclusive)"
    )
    max_cost_usd: CostQuery | None = Field(
        default=None, description="the run's LLM cost total below this (exclusive)"
    )
    limit: int = Field(default=50, ge=1, le=MAX_LIST_LIMIT)
    # The cap is enforced by the validator below (for its helpful message) and declared
    # here, so the OpenAPI document states the same bound clients are held to.
    offset: int = Field(default=0, ge=0, json_schema_extra={"maximum": MAX_OFFSET})
    cursor: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    exact_total: bool = Field(
        default=False,
        description=(
            f"count every match for `total` (O(n)); by default counting stops above "
            f"{TOTAL_CAP:,} and answers `X-Total-Exact: false`"
        ),
    )

    @field_validator("offset")
    @classmethod
    def _offset_is_capped(cls, value: int) -> int:
        # Deep offsets make PostgreSQL read and discard every skipped row; cursors do not.
        if value > MAX_OFFSET:
            raise ValueError(
                f"offset is capped at {MAX_OFFSET}; page further with `cursor` "
                "(each response's next_cursor)"
            )
        return value

    def to_filter(self, actor: str) -> RunFilter:
        """The library's filter: every filter field as sent, narrowed to the caller."""
        fields = {name: getattr(self, name) for name in RunFilterFields.model_fields}
        return RunFilter.model_construct(actor=actor, **fields)


# Steps, artifacts, LLM calls ---------------------------------------------------------


class StepCreateBody(StepFields):
    def to_create(self, run_id: uuid.UUID) -> StepCreate:
        return adopt(self, StepCreate, run_id=run_id)


StepBatch = Annotated[list[StepCreateBody], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]


class ArtifactCreateBody(ArtifactFields):
    def to_create(self, run_id: uuid.UUID) -> ArtifactCreate:
        return adopt(self, ArtifactCreate, run_id=run_id)


class LLMCallCreateBody(LLMCallFields):
    cost_usd: CostBody | None = Field(
        default=None, description='US dollars; send a string ("0.00036") to keep it exact'
    )

    def to_create(self, run_id: uuid.UUID) -> LLMCallCreate:
        return adopt(self, LLMCallCreate, run_id=run_id)


# Memory -------------------------------------------------------------------------------


MAX_QUERY_CHARS = 8192
MemoryQuery = Annotated[
    str, Field(min_length=1, max_length=MAX_QUERY_CHARS), AfterValidator(check_text)
]


class MemoryItem(EmbeddingFields):
    run_id: uuid.UUID | None = Field(default=None, description="one of the caller's runs")

    def to_create(self, actor: str) -> EmbeddingCreate:
        return adopt(self, EmbeddingCreate, actor=actor)


class MemoryAddBody(Input):
    items: list[MemoryItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class MemoryAdded(BaseModel):
    items: list[EmbeddingRecord]


class MemorySearchBody(Input):
    embedding: list[Number] | None = Field(default=None, min_length=1)
    query: MemoryQuery | None = Field(
        default=None, description="text, embedded by the configured embedder (EMBEDDER)"
    )
    k: Annotated[int, Field(ge=1, le=MAX_SEARCH_K), NotBool] = 10
    namespace: ShortText | None = None
    source_id: ShortText | None = None
    metadata: JsonObject | None = Field(default=None, description="hits contain this object")
    min_score: Number | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)
    run_id: uuid.UUID | None = Field(
        default=None, description="one of the caller's runs: the hits are recorded as its reads"
    )
    step_id: uuid.UUID | None = Field(default=None, description="a step of `run_id`")
    as_of: UtcDatetime | None = Field(
        default=None, description="ISO timestamp with a timezone: memories valid then (default now)"
    )


class MemorySearchResult(BaseModel):
    items: list[SearchHit]


class MemoryDeleted(BaseModel):
    deleted: int
