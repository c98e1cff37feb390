"""Run statistics: token and cost totals, durations and latency percentiles, per model."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Uuid, bindparam, func, literal_column, select, true

from chad_memory.models import LLMCall, Run, Step
from chad_memory.schemas import ModelStats, RunStats, RunTotals
from chad_memory.stores.base import Store, check_owner_of
from chad_memory.stores.limits import check_batch
from chad_memory.stores.statements import DriverStatement
from chad_memory.stores.transactions import driver_read, retried, transaction

_ZERO: ColumnElement[int] = literal_column("0")  # a constant in the SQL, not a parameter to pass


def _stats_statements() -> tuple[DriverStatement, DriverStatement]:
    """The run (its owner and span) with its step and call totals, then the per-model rows:
    two statements compiled once, run in autocommit (each sees its own snapshot, as each
    statement of a READ COMMITTED transaction would)."""
    run_id = bindparam("run_id", type_=Uuid)
    latency = LLMCall.latency_ms
    steps = (
        select(
            func.count(Step.id).label("count"),
            func.sum(Step.duration_ms).label("duration"),
            func.min(Step.started_at).label("first"),
            func.max(Step.completed_at).label("last"),
        )
        .where(Step.run_id == Run.id)
        .lateral("s")
    )
    calls = (
        select(
            func.count(LLMCall.id).label("count"),
            func.coalesce(func.sum(LLMCall.prompt_tokens), _ZERO).label("prompt"),
            func.coalesce(func.sum(LLMCall.completion_tokens), _ZERO).label("completion"),
            func.coalesce(func.sum(LLMCall.total_tokens), _ZERO).label("total"),
            func.coalesce(func.sum(LLMCall.cost_usd), _ZERO).label("cost"),
            func.avg(latency).label("mean"),
            func.percentile_cont(literal_column("0.5")).within_group(latency).label("p50"),
            func.percentile_cont(literal_column("0.95")).within_group(latency).label("p95"),
            func.max(latency).label("max"),
        )
        .where(LLMCall.run_id == Run.id)
        .lateral("c")
    )
    totals = (
        select(
            Run.actor,
            Run.started_at,
            Run.completed_at,
            *(c.label(f"step_{c.name}") for c in steps.c),
            *(c.label(f"call_{c.name}") for c in calls.c),
        )
        .select_from(Run.__table__.join(steps, true()).join(calls, true()))
        .where(Run.id == run_id)
    )
    models = (
        select(
            LLMCall.provider,
            LLMCall.model,
            func.count(LLMCall.id),
            func.sum(LLMCall.prompt_tokens),
            func.sum(LLMCall.completion_tokens),
            func.sum(LLMCall.total_tokens),
            func.coalesce(func.sum(LLMCall.cost_usd), _ZERO),
            func.avg(latency),
        )
        .where(LLMCall.run_id == run_id)
        .group_by(LLMCall.provider, LLMCall.model)
        .order_by(LLMCall.provider, LLMCall.model)
    )
    return DriverStatement.of(totals), DriverStatement.of(models)


_TOTALS, _BY_MODEL = _stats_statements()


class StatsMethods(Store):
    @retried
    async def get_run_stats(self, run_id: uuid.UUID, *, actor: str | None = None) -> RunStats:
        """Token and cost totals (exact: numeric sums), durations and latency percentiles."""
        async with driver_read(self._db, "get_run_stats") as conn:
            row = await conn.fetchrow(_TOTALS.sql, run_id)
            check_owner_of("run", run_id, None if row is None else row["actor"], actor)
            assert row is not None
            models = await conn.fetch(_BY_MODEL.sql, run_id)
        steps = (row["step_count"], row["step_duration"], row["step_first"], row["step_last"])
        calls = [
            row[f"call_{name}"]
            for name in ("count", "prompt", "completion", "total", "cost", "mean", "p50", "p95")
        ] + [row["call_max"]]

        start, end = row["started_at"], row["completed_at"]
        if start is None or end is None:
            start, end = steps[2], steps[3]
        # asyncpg reads PostgreSQL's -infinity / infinity (rows stored before the input
        # refused those instants) as naive datetimes: an infinite span has no duration.
        duration = None
        if start is not None and end is not None and start.tzinfo and end.tzinfo:
            duration = (end - start).total_seconds() * 1000

        def _float(value: Any) -> float | None:
            return None if value is None else float(value)

        return RunStats(
            run_id=run_id,
            step_count=steps[0],
            llm_call_count=calls[0],
            prompt_tokens=int(calls[1]),
            completion_tokens=int(calls[2]),
            total_tokens=int(calls[3]),
            cost_usd=Decimal(calls[4]),
            duration_ms=duration,
            step_duration_ms_total=_float(steps[1]),
            latency_ms_mean=_float(calls[5]),
            latency_ms_p50=_float(calls[6]),
            latency_ms_p95=_float(calls[7]),
            latency_ms_max=_float(calls[8]),
            by_model=[
                ModelStats(
                    provider=m[0],
                    model=m[1],
                    calls=m[2],
                    prompt_tokens=int(m[3]),
                    completion_tokens=int(m[4]),
                    total_tokens=int(m[5]),
                    cost_usd=Decimal(m[6]),
                    latency_ms_mean=_float(m[7]),
                )
                for m in models
            ],
        )

    @retried
    async def get_run_totals(
        self, run_ids: Sequence[uuid.UUID], *, actor: str | None = None
    ) -> dict[uuid.UUID, RunTotals]:
        """Step count, LLM calls, tokens and cost of each run, for a list page: grouped
        queries for the whole page instead of `get_run_stats` per row. Unknown ids (and,
        with `actor`, other actors' runs) are left out of the answer."""
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return {}
        check_batch(wanted, "run ids")
        known_q = select(Run.id).where(Run.id.in_(wanted))
        if actor is not None:
            known_q = known_q.where(Run.actor == actor)
        step_q = (
            select(Step.run_id, func.count(Step.id))
            .where(Step.run_id.in_(wanted))
            .group_by(Step.run_id)
        )
        call_q = (
            select(
                LLMCall.run_id,
                func.count(LLMCall.id),
                func.coalesce(func.sum(LLMCall.total_tokens), 0),
                func.coalesce(func.sum(LLMCall.cost_usd), 0),
            )
            .where(LLMCall.run_id.in_(wanted))
            .group_by(LLMCall.run_id)
        )
        async with transaction(self._db, "get_run_totals") as session:
            known = set(await session.scalars(known_q))
            steps = {r[0]: int(r[1]) for r in await session.execute(step_q)}
            calls = {r[0]: (r[1], r[2], r[3]) for r in await session.execute(call_q)}
        totals: dict[uuid.UUID, RunTotals] = {}
        for run_id in wanted:
            if run_id not in known:
                continue
            count, tokens, cost = calls.get(run_id, (0, 0, Decimal(0)))
            totals[run_id] = RunTotals(
                run_id=run_id,
                step_count=steps.get(run_id, 0),
                llm_call_count=int(count),
                total_tokens=int(tokens),
                cost_usd=Decimal(cost or 0),
            )
        return totals
