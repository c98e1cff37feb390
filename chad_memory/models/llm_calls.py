"""LLM calls, the model prices that cost them, and the hourly usage rollups that triggers
on llm_calls keep (revision 007).

One family because a call's cost is read against a price and summed into the rollups:
the three change together.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id, _in_list, _search_index
from chad_memory.vocabulary import RUN_STATUSES

# Costs: exactly what the input accepts (10 integer digits, 20 decimals), never rounded.
COST = Numeric(30, 20)
# Prices are per million tokens.
PRICE = Numeric(20, 10)
COST_SOURCES = ("client", "table")


class ModelPrice(Base):
    """A user's price for a model, in force from `starts_at` (see chad_memory.prices)."""

    __tablename__ = "model_prices"

    id: Mapped[uuid.UUID] = _id()
    # None: every actor's calls (set by the operator); an actor's own rows win.
    actor: Mapped[str | None]
    # None: any provider.
    provider: Mapped[str | None]
    # A model name, or a glob with `*` (e.g. "gpt-4o*").
    model_pattern: Mapped[str] = mapped_column(nullable=False)
    starts_at: Mapped[datetime] = mapped_column(nullable=False)
    input_mtok: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    # None: cache reads / writes cost the input price.
    cached_input_mtok: Mapped[Decimal | None] = mapped_column(PRICE)
    cache_write_mtok: Mapped[Decimal | None] = mapped_column(PRICE)
    output_mtok: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(
            "input_mtok >= 0 AND output_mtok >= 0 AND coalesce(cached_input_mtok, 0) >= 0 "
            "AND coalesce(cache_write_mtok, 0) >= 0",
            name="prices_nonnegative",
        ),
        Index(
            "uq_model_prices_actor_provider_model_pattern_starts_at",
            "actor",
            "provider",
            "model_pattern",
            "starts_at",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )


class LLMCall(Base):
    """One LLM call. Token counts follow OpenTelemetry GenAI: prompt_tokens includes
    cached_tokens and cache_write_tokens, completion_tokens includes reasoning_tokens."""

    __tablename__ = "llm_calls"

    id: Mapped[uuid.UUID] = _id()
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    # The run's actor, set by a BEFORE INSERT trigger (revision 007): never sent.
    actor: Mapped[str] = mapped_column(nullable=False)
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("steps.id", ondelete="SET NULL"))
    provider: Mapped[str | None]
    # The name usage counts the call under (schemas.usage_model: the request model, else
    # the response model); the two as the call reported them (revision 012).
    model: Mapped[str | None]
    request_model: Mapped[str | None]
    response_model: Mapped[str | None]
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    total_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cached_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cost_usd: Mapped[Decimal | None] = mapped_column(COST)
    # 'client' (sent with the call), 'table' (computed from a price), None (no price known).
    cost_source: Mapped[str | None]
    # The user price row used, if any; price_ref names it (or the built-in price) in words.
    price_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_prices.id", ondelete="SET NULL")
    )
    price_ref: Mapped[str | None]
    latency_ms: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(nullable=False, server_default="succeeded")
    error: Mapped[str | None]
    request: Mapped[Any | None] = mapped_column(JSONB)
    response: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()
    # When the call started (a span's start time; the sender's; else when it was stored)
    # and the order calls were stored in: a run's calls are listed by (started_at, seq).
    started_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), nullable=False)

    __table_args__ = (
        CheckConstraint(_in_list("status", RUN_STATUSES), name="status"),
        CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0 AND total_tokens >= 0",
            name="tokens_nonnegative",
        ),
        CheckConstraint(
            "cached_tokens >= 0 AND cache_write_tokens >= 0 AND reasoning_tokens >= 0 "
            "AND cached_tokens::bigint + cache_write_tokens <= prompt_tokens "
            "AND reasoning_tokens <= completion_tokens",
            name="token_parts",
        ),
        CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name="cost_nonnegative"),
        CheckConstraint(_in_list("cost_source", COST_SOURCES), name="cost_source"),
        Index("ix_llm_calls_run_id_created_at", "run_id", "created_at"),
        Index("ix_llm_calls_run_id_started_at", "run_id", "started_at", "seq", "id"),
        Index("ix_llm_calls_step_id", "step_id"),
        Index("ix_llm_calls_actor_created_at", "actor", "created_at"),
        Index("ix_llm_calls_price_id", "price_id"),
        _search_index("llm_calls"),
    )


class LLMUsageHourly(Base):
    """Usage sums per actor, hour, provider, model and latency bucket, kept by triggers on
    llm_calls (revision 007). Null provider/model are stored as ''."""

    __tablename__ = "llm_usage_hourly"

    actor: Mapped[str] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(primary_key=True)
    latency_bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, nullable=False)
    errors: Mapped[int] = mapped_column(BigInteger, nullable=False)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    costed_calls: Mapped[int] = mapped_column(BigInteger, nullable=False)
    latency_ms_sum: Mapped[float] = mapped_column(Double, nullable=False)


class LLMUsageRun(Base):
    """Which runs had calls in an actor's hour, provider and model: distinct run counts."""

    __tablename__ = "llm_usage_runs"

    actor: Mapped[str] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
