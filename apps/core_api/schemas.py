"""What the HTTP API accepts and returns, kept apart from the library's records.

Request bodies never carry `actor` (it comes from the API key) nor `id` / `run_id` (they
come from the path or the database), and unknown fields are refused, so a client cannot
write a row it does not own. Responses are declared models, so `/openapi.json` documents
every route and a new library column is never exposed by accident.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from chad_memory.schemas import (
    ArtifactCreate,
    ArtifactRecord,
    EmbeddingCreate,
    EmbeddingRecord,
    Input,
    JsonObject,
    JsonValue,
    LLMCallCreate,
    Milliseconds,
    RunCreate,
    RunRecord,
    RunStatus,
    RunSummary,
    SafeText,
    SearchHit,
    ShortText,
    StepCreate,
    StepStatus,
    TokenCount,
    UtcDatetime,
)
from chad_memory.schemas import Cost as CostValue
from chad_memory.validation import check_text

MAX_LIST_LIMIT = 200
MAX_OFFSET = 10_000
# GET /runs stops counting `total` above this many matches unless asked for exact_total:
# an exact count reads every match (79 ms at 1M runs vs 2.2 ms at 10k in bench/ingest.py).
TOTAL_CAP = 10_000
MAX_CHILDREN_PER_REQUEST = 1_000
MAX_MEMORY_BATCH = 1_000
MAX_SEARCH_K = 100


class Problem(BaseModel):
    """Every error answer: a JSON object with a `detail` (a string, or pydantic's list)."""

    detail: Any


# OpenAPI entries shared by every authenticated router.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, unknown or revoked API key"},
    503: {"model": Problem, "description": "database unavailable; retry after Retry-After"},
}


# Runs ---------------------------------------------------------------------------------


class RunCreateBody(Input):
    """POST /runs. The owner is the caller; the id is chosen by the server."""

    name: ShortText | None = None
    agent: ShortText | None = None
    status: RunStatus = "pending"
    trace_id: ShortText | None = None
    thread_id: uuid.UUID | None = Field(default=None, description="one of the caller's threads")
    request_payload: JsonValue | None = None
    result: JsonValue | None = None
    error: SafeText | None = None
    metadata: JsonObject = Field(default_factory=dict)
    tags: list[ShortText] = Field(default_factory=list, max_length=64)
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None

    def to_create(self, actor: str, idempotency_key: str | None) -> RunCreate:
        return RunCreate(actor=actor, idempotency_key=idempotency_key, **self.model_dump())


class RunDetail(RunRecord):
    """GET /runs/{id}: the run with its artifacts."""

    artifacts: list[ArtifactRecord]


class RunList(BaseModel):
    items: list[RunSummary]
    total: int = Field(
        description=(
            "runs matching the filters, ignoring limit/offset/cursor; at most "
            f"{TOTAL_CAP:,} unless exact_total=true (header X-Total-Exact says which)"
        )
    )
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: done")


class RunListQuery(BaseModel):
    """GET /runs query. Unknown parameters (an `actor`, say) are refused: none can widen."""

    model_config = ConfigDict(extra="forbid")

    status: RunStatus | None = None
    name: ShortText | None = None
    thread_id: uuid.UUID | None = None
    trace_id: ShortText | None = None
    tag: ShortText | None = None
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None
    limit: int = Field(default=50, ge=1, le=MAX_LIST_LIMIT)
    offset: int = Field(default=0, ge=0)
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


# Steps, artifacts, LLM calls ---------------------------------------------------------


class StepCreateBody(Input):
    step_index: int = Field(ge=0, le=2**31 - 1)
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

    def to_create(self, run_id: uuid.UUID) -> StepCreate:
        return StepCreate(run_id=run_id, **self.model_dump())


StepBatch = Annotated[
    list[StepCreateBody], Field(min_length=1, max_length=MAX_CHILDREN_PER_REQUEST)
]


class ArtifactCreateBody(Input):
    step_id: uuid.UUID | None = None
    name: ShortText
    content_type: ShortText | None = None
    size_bytes: int | None = Field(default=None, ge=0, le=2**63 - 1)
    url: Annotated[str, Field(max_length=4096), AfterValidator(check_text)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    metadata: JsonObject = Field(default_factory=dict)

    def to_create(self, run_id: uuid.UUID) -> ArtifactCreate:
        return ArtifactCreate(run_id=run_id, **self.model_dump())


class LLMCallCreateBody(Input):
    step_id: uuid.UUID | None = None
    provider: ShortText | None = None
    model: ShortText | None = None
    prompt_tokens: TokenCount = 0
    completion_tokens: TokenCount = 0
    total_tokens: TokenCount | None = None
    cost_usd: CostValue | None = Field(
        default=None, description='US dollars; send a string ("0.00036") to keep it exact'
    )
    latency_ms: Milliseconds | None = None
    status: RunStatus = "succeeded"
    error: SafeText | None = None
    request: JsonValue | None = None
    response: JsonValue | None = None

    def to_create(self, run_id: uuid.UUID) -> LLMCallCreate:
        return LLMCallCreate(run_id=run_id, **self.model_dump())


# Memory -------------------------------------------------------------------------------


class MemoryItem(Input):
    namespace: ShortText = "default"
    source_type: ShortText | None = None
    source_id: ShortText | None = None
    run_id: uuid.UUID | None = Field(default=None, description="one of the caller's runs")
    content: SafeText | None = None
    embedding: list[float] = Field(min_length=1)
    metadata: JsonObject = Field(default_factory=dict)

    def to_create(self, actor: str) -> EmbeddingCreate:
        return EmbeddingCreate(actor=actor, **self.model_dump())


class MemoryAddBody(Input):
    items: list[MemoryItem] = Field(min_length=1, max_length=MAX_MEMORY_BATCH)


class MemoryAdded(BaseModel):
    items: list[EmbeddingRecord]


class MemorySearchBody(Input):
    embedding: list[float] = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=MAX_SEARCH_K)
    namespace: ShortText | None = None
    source_id: ShortText | None = None
    metadata: JsonObject | None = Field(default=None, description="hits contain this object")
    min_score: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)


class MemorySearchResult(BaseModel):
    items: list[SearchHit]


class MemoryDeleted(BaseModel):
    deleted: int
