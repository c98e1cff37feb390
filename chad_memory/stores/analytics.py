"""Usage analytics over an actor's LLM calls: calls, runs, tokens, cost, latency, errors.

Whole hours are read from the roll-ups that triggers keep on llm_calls (revision 007):
`llm_usage_hourly` (sums per hour, provider, model and latency bucket) and
`llm_usage_runs` (which runs had calls there). The partial hours at either end of the
window are read from llm_calls itself (index on actor, created_at), so any window is
answered exactly, and a 30-day window reads a few thousand roll-up rows instead of every
call (bench/usage.py). `run_name` is not rolled up (a run can be renamed): that grouping
reads the window's calls joined to their runs.

Percentiles come from the latency buckets: the value reported for a rank is the mean
latency of the calls in the bucket holding that rank, so it lies within that bucket
(at most 19% wide) and equals the exact percentile when the bucket holds one value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chad_memory.errors import InvalidInputError
from chad_memory.schemas import EXACT, UsageGroupBy, UsageReport, UsageRow
from chad_memory.stores.base import Store
from chad_memory.stores.score_analytics import score_aggregates
from chad_memory.stores.transactions import retried, transaction
from chad_memory.validation import check_actor

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
# An hourly breakdown answers one row per hour: bounded to a month.
MAX_HOURLY_WINDOW = timedelta(days=31)
GROUPS: tuple[UsageGroupBy, ...] = ("model", "provider", "day", "hour", "run_name")
MAX_DIMENSIONS = 2
USAGE_WORK_MEM = "64MB"

_HOUR = timedelta(hours=1)
# The roll-up's sums: the live definition (revision 009 keeps a frozen copy in the
# trigger function it created). Changing one is a new revision that rebuilds the trigger.
_SUMS = (
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "costed_calls",
    "latency_ms_sum",
)
# The same sums, per raw call.
_RAW_SUMS = (
    "1",
    "(c.status = 'failed')::int",
    "c.prompt_tokens",
    "c.completion_tokens",
    "c.total_tokens",
    "c.cached_tokens",
    "c.cache_write_tokens",
    "c.reasoning_tokens",
    "coalesce(c.cost_usd, 0)",
    "(c.cost_usd IS NOT NULL)::int",
    "coalesce(c.latency_ms, 0)",
)
# Group key over the roll-up (columns of llm_usage_hourly / llm_usage_runs) and over calls.
_ROLLUP_KEY = {
    "model": "model",
    "provider": "provider",
    "day": "date_trunc('day', hour, 'UTC')",
    "hour": "hour",
}
_RAW_KEY = {
    "model": "coalesce(c.model, '')",
    "provider": "coalesce(c.provider, '')",
    "day": "date_trunc('day', c.created_at, 'UTC')",
    "hour": "date_trunc('hour', c.created_at, 'UTC')",
    # Run names are never '' (ShortText), so '' can stand for "no name" and keys stay
    # non-null: the sums and the run counts join on plain equality (a hash join).
    "run_name": "coalesce(r.name, '')",
}
# The partial hours at both ends, as two plain ranges (each an index range scan on
# ix_llm_calls_actor_created_at; an OR of the two made the planner scan every call).
_RAW_EDGES = (
    "c.actor = :actor AND c.created_at >= :from_ AND c.created_at < :edge0",
    "c.actor = :actor AND c.created_at >= :edge1 AND c.created_at < :to",
)


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: datetime) -> datetime:
    floor = _floor_hour(at)
    if floor == at:
        return floor
    try:
        return floor + _HOUR
    except OverflowError:  # in the last hour of year 9999: no whole hour follows
        return datetime.max.replace(tzinfo=UTC)


def dimensions(group_by: UsageGroupBy | Sequence[UsageGroupBy]) -> list[UsageGroupBy]:
    """One dimension, or two (e.g. model and day): rows are the groups of both."""
    dims: list[UsageGroupBy] = [group_by] if isinstance(group_by, str) else list(group_by)
    unknown = [d for d in dims if d not in GROUPS]
    if unknown or not 1 <= len(dims) <= MAX_DIMENSIONS or len(set(dims)) != len(dims):
        raise InvalidInputError(
            f"group_by takes one or {MAX_DIMENSIONS} different dimensions of {', '.join(GROUPS)}"
        )
    return dims


def window(
    dims: Sequence[UsageGroupBy], from_: datetime | None, to: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window [from, to) the report covers: the last 30 days unless told."""
    to = (to or now).astimezone(UTC)
    try:
        from_ = (from_ or to - DEFAULT_WINDOW).astimezone(UTC)
    except OverflowError:
        raise InvalidInputError("to is too early for the default 30-day window") from None
    if from_ >= to:
        raise InvalidInputError("from must be before to")
    limit = MAX_HOURLY_WINDOW if "hour" in dims else MAX_WINDOW
    if to - from_ > limit:
        raise InvalidInputError(
            f"the window may span at most {limit.days} days for group_by={','.join(dims)}"
        )
    return from_, to


def usage_sql(dims: Sequence[UsageGroupBy]) -> str:
    """One statement (one round trip): per group and latency bucket, the sums, and the
    group's distinct runs. Columns: g0[, g1], b, the sums in _SUMS order, runs."""
    keys = ", ".join(f"g{i}" for i in range(len(dims)))
    sums = ", ".join(f"sum({c})" for c in _SUMS)
    raw_parts = ", ".join(f"{expr} AS {name}" for expr, name in zip(_RAW_SUMS, _SUMS, strict=True))
    raw_keys = ", ".join(f"{_RAW_KEY[d]} AS g{i}" for i, d in enumerate(dims))
    if "run_name" in dims:
        calls = (
            "FROM llm_calls c JOIN runs r ON r.id = c.run_id "
            "WHERE c.actor = :actor AND c.created_at >= :from_ AND c.created_at < :to"
        )
        source = f"SELECT {raw_keys}, chad_latency_bucket(c.latency_ms) AS b, {raw_parts} {calls}"
        runs = f"SELECT {raw_keys}, c.run_id {calls}"
    else:
        rolled = ", ".join(_SUMS)
        rolled_keys = ", ".join(f"{_ROLLUP_KEY[d]} AS g{i}" for i, d in enumerate(dims))
        rolled_window = "WHERE actor = :actor AND hour >= :hour0 AND hour < :hour1"
        source = f"SELECT {rolled_keys}, latency_bucket AS b, {rolled} "
        source += f"FROM llm_usage_hourly {rolled_window}"
        runs = f"SELECT {rolled_keys}, run_id FROM llm_usage_runs {rolled_window}"
        for edge in _RAW_EDGES:
            source += (
                f" UNION ALL SELECT {raw_keys}, chad_latency_bucket(c.latency_ms), "
                f"{raw_parts} FROM llm_calls c WHERE {edge}"
            )
            runs += f" UNION ALL SELECT {raw_keys}, c.run_id FROM llm_calls c WHERE {edge}"
    on = " AND ".join(f"s.g{i} = r.g{i}" for i in range(len(dims)))
    return (
        f"WITH s AS (SELECT {keys}, b, {sums} FROM ({source}) AS parts GROUP BY {keys}, b), "
        # DISTINCT then count: a hash aggregate, where count(DISTINCT) would sort.
        f"r AS (SELECT {keys}, count(*) AS runs "
        f"FROM (SELECT DISTINCT {keys}, run_id FROM ({runs}) AS parts) AS d GROUP BY {keys}) "
        f"SELECT s.*, r.runs FROM s LEFT JOIN r ON {on}"
    )


@dataclass
class _Group:
    sums: list[Any] = field(default_factory=lambda: [0] * len(_SUMS))
    # latency bucket -> (calls, latency sum); bucket -1 (no latency) left out.
    buckets: dict[int, tuple[int, float]] = field(default_factory=dict)


def _percentile(buckets: dict[int, tuple[int, float]], p: float) -> float | None:
    """Nearest-rank percentile, read as the mean of the bucket that holds the rank."""
    total = sum(n for n, _ in buckets.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p * total))
    seen = 0
    for bucket in sorted(buckets):
        n, latency_sum = buckets[bucket]
        seen += n
        if seen >= rank:
            return latency_sum / n
    raise AssertionError("unreachable: the ranks add up to the total")


def _label(group_by: str, key: Any) -> str | None:
    if group_by == "day":
        return str(key.astimezone(UTC).date().isoformat())
    if group_by == "hour":
        return str(key.astimezone(UTC).isoformat())
    if group_by in ("model", "provider", "run_name"):
        return key or None  # a missing model, provider or run name is kept as ''
    return None if key is None else str(key)


def _order(key: Any) -> tuple[bool, Any]:
    """Times in time order; names in name order, a missing name last."""
    return (key is None or key == "", key or "")


async def usage_report(
    session: AsyncSession,
    *,
    actor: str,
    group_by: UsageGroupBy | Sequence[UsageGroupBy],
    from_: datetime | None,
    to: datetime | None,
) -> UsageReport:
    dims = dimensions(group_by)
    # Tens of thousands of roll-up rows are grouped: with the default 4 MB PostgreSQL
    # sorted them on disk (bench/usage.py's EXPLAIN); in memory they hash.
    await session.execute(text(f"SET LOCAL work_mem = '{USAGE_WORK_MEM}'"))
    start, end = window(dims, from_, to, datetime.now(UTC))
    hour0, hour1 = _ceil_hour(start), _floor_hour(end)
    if hour0 >= hour1:  # no whole hour inside: every call is read from llm_calls
        hour0 = hour1 = edge0 = edge1 = end
    else:
        edge0, edge1 = hour0, hour1
    params = {
        "actor": actor,
        "from_": start,
        "to": end,
        "hour0": hour0,
        "hour1": hour1,
        "edge0": edge0,
        "edge1": edge1,
    }
    n = len(dims)
    groups: dict[tuple[Any, ...], _Group] = {}
    runs: dict[tuple[Any, ...], int] = {}
    for row in await session.execute(text(usage_sql(dims)), params):
        key = tuple(row[:n])
        group = groups.setdefault(key, _Group())
        runs[key] = int(row[-1] or 0)
        bucket, values = row[n], row[n + 1 : -1]
        with localcontext(EXACT):  # cost sums keep every digit
            group.sums = [a + b for a, b in zip(group.sums, values, strict=True)]
        if bucket >= 0:
            calls, latency_sum = values[0], values[-1]
            group.buckets[bucket] = (int(calls), float(latency_sum))

    rows = []
    for key in sorted(groups, key=lambda k: tuple(_order(part) for part in k)):
        group = groups[key]
        s = dict(zip(_SUMS, group.sums, strict=True))
        calls = int(s["calls"])
        if calls == 0:
            continue
        rows.append(
            UsageRow(
                group={d: _label(d, part) for d, part in zip(dims, key, strict=True)},
                calls=calls,
                runs=runs.get(key, 0),
                prompt_tokens=int(s["prompt_tokens"]),
                completion_tokens=int(s["completion_tokens"]),
                total_tokens=int(s["total_tokens"]),
                cached_tokens=int(s["cached_tokens"]),
                cache_write_tokens=int(s["cache_write_tokens"]),
                reasoning_tokens=int(s["reasoning_tokens"]),
                cost_usd=Decimal(s["cost_usd"]),
                costed_calls=int(s["costed_calls"]),
                latency_ms_p50=_percentile(group.buckets, 0.50),
                latency_ms_p95=_percentile(group.buckets, 0.95),
                latency_ms_p99=_percentile(group.buckets, 0.99),
                error_share=int(s["errors"]) / calls,
            )
        )
    scores = await score_aggregates(
        session, actor=actor, dims=dims, start=start, end=end, label=_label, order=_order
    )
    return UsageReport(group_by=dims, from_=start, to=end, rows=rows, scores=scores)


class UsageMethods(Store):
    @retried
    async def usage(
        self,
        actor: str,
        *,
        group_by: UsageGroupBy | Sequence[UsageGroupBy] = "model",
        from_: datetime | None = None,
        to: datetime | None = None,
    ) -> UsageReport:
        """The actor's LLM usage in [from_, to) (default: the last 30 days), per model,
        provider, day, hour (UTC) or run name, or per two of them (("model", "day")):
        calls, runs, tokens, exact cost, latency p50/p95/p99 and error share; and the
        scores made in the window, per the same groups (`score_analytics`)."""
        return (await self.usage_reports(actor, [group_by], from_=from_, to=to))[0]

    @retried
    async def usage_reports(
        self,
        actor: str,
        group_bys: Sequence[UsageGroupBy | Sequence[UsageGroupBy]],
        *,
        from_: datetime | None = None,
        to: datetime | None = None,
    ) -> list[UsageReport]:
        """`usage` for each grouping in `group_bys`, over one window, in one unit of work
        (one pooled connection): what a dashboard shows several cuts of at once reads."""
        actor = check_actor(actor)
        # A transaction, not a plain read: `SET LOCAL work_mem` lives as long as one.
        async with transaction(self._db, "usage") as session:
            return [
                await usage_report(session, actor=actor, group_by=g, from_=from_, to=to)
                for g in group_bys
            ]
