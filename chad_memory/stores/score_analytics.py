"""Score aggregates beside the usage report: per group of the same dimensions, per score
name, how many scores, their mean and, for labels, how many of each.

Scores are placed in the window by their own created_at. `day` / `hour` are the score's
UTC day or hour, `run_name` its run's name, `model` / `provider` those of its run's LLM
calls: a run whose calls used two models counts its scores in both groups, and scores
without a run (threads) or runs without calls fall in the null group.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chad_memory.schemas import ScoreAggregate, UsageGroupBy

_KEY: dict[str, str] = {
    "model": "m.model",
    "provider": "m.provider",
    "day": "date_trunc('day', s.created_at, 'UTC')",
    "hour": "date_trunc('hour', s.created_at, 'UTC')",
    "run_name": "r.name",
}


def score_sql(dims: Sequence[UsageGroupBy]) -> str:
    """Per group, name and label: count, sum and count of the numbers. Columns: g0[, g1],
    name, label, n, total, numbers."""
    keys = ", ".join(f"{_KEY[d]} AS g{i}" for i, d in enumerate(dims))
    groups = ", ".join(f"g{i}" for i in range(len(dims)))
    joins = " LEFT JOIN runs r ON r.id = s.run_id" if "run_name" in dims else ""
    if "model" in dims or "provider" in dims:
        joins += (
            " LEFT JOIN (SELECT DISTINCT run_id, model, provider FROM llm_calls"
            " WHERE actor = :actor) AS m ON m.run_id = s.run_id"
        )
    return (
        f"SELECT {groups}, name, label, count(*) AS n, sum(value) AS total, "
        f"count(value) AS numbers FROM (SELECT {keys}, s.name, s.label, s.value "
        f"FROM scores s{joins} "
        "WHERE s.actor = :actor AND s.created_at >= :from_ AND s.created_at < :to) AS parts "
        f"GROUP BY {groups}, name, label"
    )


async def score_aggregates(
    session: AsyncSession,
    *,
    actor: str,
    dims: Sequence[UsageGroupBy],
    start: datetime,
    end: datetime,
    label: Any,
    order: Any,
) -> list[ScoreAggregate]:
    """The aggregates, groups in the usage report's order (`label` and `order` are its
    own helpers), names in name order within a group."""
    n = len(dims)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    params = {"actor": actor, "from_": start, "to": end}
    for row in await session.execute(text(score_sql(dims)), params):
        key = (*row[:n], row[n])
        entry = found.setdefault(key, {"count": 0, "total": 0.0, "numbers": 0, "labels": {}})
        entry["count"] += row.n
        entry["total"] += float(row.total or 0)
        entry["numbers"] += row.numbers
        if row.label is not None:
            entry["labels"][row.label] = row.n
    ordered = sorted(found, key=lambda k: (tuple(order(p) for p in k[:n]), k[n]))
    return [
        ScoreAggregate(
            group={d: label(d, part) for d, part in zip(dims, key[:n], strict=True)},
            name=key[n],
            count=found[key]["count"],
            mean=found[key]["total"] / found[key]["numbers"] if found[key]["numbers"] else None,
            labels=found[key]["labels"],
        )
        for key in ordered
    ]
