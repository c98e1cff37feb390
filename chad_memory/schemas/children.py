"""What hangs off a run: steps, artifacts and LLM calls (each as Fields / Create /
Record), and the per-run statistics computed from them (`RunStats`, `RunTotals`,
`ModelStats`).

Separate from `runs` because each child is written and read on its own path, keyed by
its run rather than owned by an actor.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from chad_memory.schemas.base import (
    Cost,
    Input,
    Int32,
    Int64,
    JsonObject,
    JsonValue,
    KeyText,
    Milliseconds,
    Money,
    Record,
    SafeText,
    ShortText,
    TokenCount,
    UtcDatetime,
    _metadata_field,
)
from chad_memory.schemas.runs import Page, RunRecord
from chad_memory.validation import check_text
from chad_memory.vocabulary import RunStatus, StepStatus

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
    provider: KeyText | None = None
    # The name usage and analytics count the call under; without one, the request model,
    # else the response model (`usage_model`).
    model: KeyText | None = None
    # The model asked for (e.g. gpt-4o-mini) and the one that answered (a dated snapshot,
    # e.g. gpt-4o-mini-2024-07-18). Pricing uses the most exact name it has a price for.
    request_model: KeyText | None = None
    response_model: KeyText | None = None
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
    # When the call started; a run's calls are listed in this order. None: when stored.
    started_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _name_the_model(self) -> Self:
        if self.model is None:
            self.model = usage_model(self.request_model, self.response_model)
        return self

    @model_validator(mode="after")
    def _total_fits(self) -> Self:
        # The default total (stored_total_tokens) must fit the integer column too.
        if self.stored_total_tokens > 2**31 - 1:
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

    @property
    def stored_total_tokens(self) -> int:
        """total_tokens as sent, else prompt + completion: the column is never null."""
        if self.total_tokens is not None:
            return self.total_tokens
        return self.prompt_tokens + self.completion_tokens


def usage_model(request_model: str | None, response_model: str | None) -> str | None:
    """The one rule naming a call's model in usage and analytics: the model asked for,
    else the one that answered. Every path (the API, the tracer, OTLP) knows the request
    model, while only some know the response's snapshot name, so one model traced two
    ways is counted in one row."""
    return request_model if request_model is not None else response_model


class LLMCallCreate(LLMCallFields):
    id: uuid.UUID | None = None
    run_id: uuid.UUID


class LLMCallRecord(Record):
    id: uuid.UUID
    run_id: uuid.UUID
    step_id: uuid.UUID | None
    provider: str | None
    model: str | None
    request_model: str | None
    response_model: str | None
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
    started_at: datetime
    # The order calls were stored in: breaks ties between calls that started together.
    seq: int


class ModelStats(BaseModel):
    provider: str | None
    model: str | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Money
    latency_ms_mean: float | None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None


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


class RunPage(BaseModel):
    """What a run's page shows, read together (`PostgresStore.get_run_page`): the run, its
    stats, one page of steps, and all its LLM calls and artifacts."""

    run: RunRecord
    stats: RunStats
    steps: Page[StepRecord]
    llm_calls: list[LLMCallRecord]
    artifacts: list[ArtifactRecord]
