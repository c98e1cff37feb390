"""Run statistics: token and cost totals, durations and latency percentiles, per model."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from chad_memory.models import LLMCall, Run, Step
from chad_memory.schemas import ModelStats, RunStats, RunTotals
from chad_memory.stores.base import Store, load_run
from chad_memory.stores.limits import check_batch
from chad_memory.stores.transactions import retried, transaction


class StatsMethods(Store):
    @retried
    async def get_run_stats(self, run_id: uuid.UUID, *, actor: str | None = None) -> RunStats:
        """Token and cost totals (exact: numeric sums), durations and latency percentiles."""
        latency = LLMCall.latency_ms
        step_q = select(
            func.count(Step.id),
            func.sum(Step.duration_ms),
            func.min(Step.started_at),
            func.max(Step.completed_at),
        ).where(Step.run_id == run_id)
        call_q = select(
            func.count(LLMCall.id),
            func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
            func.coalesce(func.sum(LLMCall.completion_tokens), 0),
            func.coalesce(func.sum(LLMCall.total_tokens), 0),
            func.coalesce(func.sum(LLMCall.cost_usd), 0),
            func.avg(latency),
            func.percentile_cont(0.5).within_group(latency),
            func.percentile_cont(0.95).within_group(latency),
            func.max(latency),
        ).where(LLMCall.run_id == run_id)
        model_q = (
            select(
                LLMCall.provider,
                LLMCall.model,
                func.count(LLMCall.id),
                func.sum(LLMCall.prompt_tokens),
                func.sum(LLMCall.completion_tokens),
                func.sum(LLMCall.total_tokens),
                func.coalesce(func.sum(LLMCall.cost_usd), 0),
                func.avg(latency),
            )
            .where(LLMCall.run_id == run_id)
            .group_by(LLMCall.provider, LLMCall.model)
            .order_by(LLMCall.provider, LLMCall.model)
        )
        async with transaction(self._db, "get_run_stats") as session:
            run = await load_run(session, run_id, actor)
            steps = (await session.execute(step_q)).one()
            calls = (await session.execute(call_q)).one()
            models = (await session.execute(model_q)).all()

        start, end = run.started_at, run.completed_at
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
