"""Runs: what a client says about a run, what a run reads back as, the filters a list
of runs takes, and `Page`, the envelope of every keyset-paged list.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, field_serializer, field_validator
from pydantic.json_schema import SkipJsonSchema

from chad_memory.schemas.base import (
    Actor,
    Cost,
    Input,
    JsonObject,
    JsonValue,
    Milliseconds,
    Record,
    SafeText,
    ShortText,
    UtcDatetime,
    _metadata_field,
)
from chad_memory.schemas.scores import ScoreCondition, ScoreConditionValue
from chad_memory.vocabulary import RunStatus


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
    # Runs with a run-level score that meets the condition (`helpfulness<0.5`).
    score: ScoreConditionValue | None = None

    @field_serializer("score", when_used="json-unless-none")
    def _score_text(self, condition: ScoreCondition) -> str:
        # As a query string carries it (a client sends the filter so).
        return condition.text


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
