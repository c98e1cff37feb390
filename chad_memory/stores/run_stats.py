"""Run statistics: token and cost totals, durations and latency percentiles, per model."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Label,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from chad_memory.models import LLMCall, Run, Step
from chad_memory.schemas import ModelStats, RunStats, RunTotals
from chad_memory.stores.base import Store, check_owner_of
from chad_memory.stores.limits import check_batch
from chad_memory.stores.statements import DriverStatement
from chad_memory.stores.transactions import driver_read, read, retried

_ZERO: ColumnElement[int] = literal_column("0")  # a constant in the SQL, not a parameter to pass


def _stats_parts() -> tuple[FromClause, tuple[ColumnElement[Any], ...]]:
    """`runs` joined to its step and call totals, and the stats columns over that join
    (`step_*`, `call_*`, and `by_model` as one jsonb array): one statement answers a
    run's stats, alone (`get_run_stats`) or beside the run (`get_run_page`)."""
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
            *_percentiles(),
            func.max(latency).label("max"),
        )
        .where(LLMCall.run_id == Run.id)
        .lateral("c")
    )
    models = (
        select(
            LLMCall.provider.label("provider"),
            LLMCall.model.label("model"),
            func.count(LLMCall.id).label("calls"),
            func.sum(LLMCall.prompt_tokens).label("prompt_tokens"),
            func.sum(LLMCall.completion_tokens).label("completion_tokens"),
            func.sum(LLMCall.total_tokens).label("total_tokens"),
            # As text inside JSON: a JSON number would come back as a float.
            cast(func.coalesce(func.sum(LLMCall.cost_usd), _ZERO), Text).label("cost_usd"),
            func.avg(latency).label("latency_ms_mean"),
            *(p.label(f"latency_ms_{p.name}") for p in _percentiles()),
        )
        .where(LLMCall.run_id == Run.id)
        .group_by(LLMCall.provider, LLMCall.model)
        .correlate(Run)
        .subquery("m")
    )
    fields = [part for c in models.c for part in (literal_column(f"'{c.key}'"), c)]
    by_model = (
        select(
            func.coalesce(
                func.jsonb_agg(
                    aggregate_order_by(
                        func.jsonb_build_object(*fields), models.c.provider, models.c.model
                    )
                ),
                literal_column("'[]'::jsonb"),
            )
        )
        .select_from(models)
        .scalar_subquery()
    )
    columns = (
        *(c.label(f"step_{c.name}") for c in steps.c),
        *(c.label(f"call_{c.name}") for c in calls.c),
        by_model.label("by_model"),
    )
    return Run.__table__.join(steps, true()).join(calls, true()), columns


def _percentiles() -> list[Label[Any]]:
    """Latency p50 and p95 as PostgreSQL's percentile_cont: the one definition of a
    run's percentiles (usage reports estimate theirs from roll-up buckets instead)."""
    return [
        func.percentile_cont(literal_column(q)).within_group(LLMCall.latency_ms).label(name)
        for name, q in (("p50", "0.5"), ("p95", "0.95"))
    ]


STATS_FROM, STATS_COLUMNS = _stats_parts()
_TOTALS = DriverStatement.of(
    select(Run.actor, Run.started_at, Run.completed_at, *STATS_COLUMNS)
    .select_from(STATS_FROM)
    .where(Run.id == bindparam("run_id", type_=Uuid))
)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def stats_of(run_id: uuid.UUID, row: Mapping[str, Any]) -> RunStats:
    """RunStats from a row with STATS_COLUMNS and the run's started_at / completed_at."""
    start, end = row["started_at"], row["completed_at"]
    if start is None or end is None:
        start, end = row["step_first"], row["step_last"]
    # asyncpg reads PostgreSQL's -infinity / infinity (rows stored before the input
    # refused those instants) as naive datetimes: an infinite span has no duration.
    duration = None
    if start is not None and end is not None and start.tzinfo and end.tzinfo:
        duration = (end - start).total_seconds() * 1000
    return RunStats(
        run_id=run_id,
        step_count=row["step_count"],
        llm_call_count=row["call_count"],
        prompt_tokens=int(row["call_prompt"]),
        completion_tokens=int(row["call_completion"]),
        total_tokens=int(row["call_total"]),
        cost_usd=Decimal(row["call_cost"]),
        duration_ms=duration,
        step_duration_ms_total=_float(row["step_duration"]),
        latency_ms_mean=_float(row["call_mean"]),
        latency_ms_p50=_float(row["call_p50"]),
        latency_ms_p95=_float(row["call_p95"]),
        latency_ms_max=_float(row["call_max"]),
        by_model=[ModelStats.model_validate(m) for m in row["by_model"]],
    )


class StatsMethods(Store):
    @retried
    async def get_run_stats(self, run_id: uuid.UUID, *, actor: str | None = None) -> RunStats:
        """Token and cost totals (exact: numeric sums), durations and latency percentiles."""
        async with driver_read(self._db, "get_run_stats") as conn:
            row = await conn.fetchrow(_TOTALS.sql, run_id)
        check_owner_of("run", run_id, None if row is None else row["actor"], actor)
        assert row is not None
        return stats_of(run_id, row)

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
        async with read(self._db, "get_run_totals") as conn:
            known = set(await conn.scalars(known_q))
            steps = {r[0]: int(r[1]) for r in await conn.execute(step_q)}
            calls = {r[0]: (r[1], r[2], r[3]) for r in await conn.execute(call_q)}
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
