"""Prices and usage: model prices per million tokens, and usage reports that group
LLM calls by model, provider, day, hour or run name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from chad_memory.schemas.base import (
    MAX_KEY_TEXT_BYTES,
    Input,
    KeyText,
    Money,
    Record,
    UtcDatetime,
    utf8_at_most,
)
from chad_memory.schemas.scores import ScoreAggregate
from chad_memory.validation import check_text

# Per million tokens: model_prices columns are numeric(20, 10).
PricePerMillion = Annotated[
    Decimal, Field(ge=0, lt=Decimal("1e10"), decimal_places=10, allow_inf_nan=False)
]
ModelPattern = Annotated[
    str,
    Field(min_length=1, max_length=512, pattern=r"^[^\s]+$"),
    AfterValidator(check_text),
    utf8_at_most(MAX_KEY_TEXT_BYTES),
]


class ModelPriceCreate(Input):
    """A price for a model (or a `*` pattern such as "gpt-4o*"), per million tokens, in
    force from `starts_at`. Cache prices left out cost the input price."""

    provider: KeyText | None = None
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
    # Scores made in the window, per the same groups and per score name.
    scores: list[ScoreAggregate] = Field(default_factory=list)
