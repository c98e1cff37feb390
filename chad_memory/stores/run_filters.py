"""How a `RunFilter` becomes SQL: one rule per filter field, checked complete at import.

A field named after a `runs` column is an equality test and needs no entry; any other
field needs one in `_RULES`. A field with neither raises at import, so a filter added to
the model is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from chad_memory.errors import InvalidInputError
from chad_memory.models import LLMCall, Run
from chad_memory.schemas import RunFilter


def _duration_ms() -> ColumnElement[Any]:
    """completed_at - started_at in ms; null (so never a match) unless both are set."""
    return func.extract("epoch", Run.completed_at - Run.started_at) * 1000


def _cost_usd() -> ColumnElement[Any]:
    """The sum of the run's LLM call costs (0 without any), per candidate run through
    ix_llm_calls_run_id_created_at."""
    return (
        select(func.coalesce(func.sum(LLMCall.cost_usd), 0))
        .where(LLMCall.run_id == Run.id)
        .scalar_subquery()
    )


_RULES: dict[str, Callable[[Any], ColumnElement[bool]]] = {
    "tag": lambda tag: Run.tags.contains([tag]),
    "tags_any": lambda tags: Run.tags.overlap(tags),
    "tags_all": lambda tags: Run.tags.contains(tags),
    # jsonb @> served by ix_runs_metadata (GIN, jsonb_path_ops); not an equality test.
    "metadata": lambda wanted: Run.metadata_.contains(wanted),
    "created_after": lambda at: Run.created_at >= at,
    "created_before": lambda at: Run.created_at < at,
    "min_duration_ms": lambda ms: _duration_ms() >= ms,
    "max_duration_ms": lambda ms: _duration_ms() < ms,
    "min_cost_usd": lambda usd: _cost_usd() >= usd,
    "max_cost_usd": lambda usd: _cost_usd() < usd,
}
_COLUMNS = set(Run.__table__.c.keys())


def _rule(name: str) -> Callable[[Any], ColumnElement[bool]]:
    if name in _RULES:
        return _RULES[name]
    if name in _COLUMNS:
        column = Run.__table__.c[name]
        return lambda value: column == value
    raise RuntimeError(f"RunFilter.{name} has no rule in chad_memory.stores.run_filters")


_CONDITION_OF = {name: _rule(name) for name in RunFilter.model_fields}


def run_conditions(filters: RunFilter | None) -> list[ColumnElement[bool]]:
    if filters is None:
        return []
    return [
        _CONDITION_OF[name](value)
        for name in RunFilter.model_fields
        if (value := getattr(filters, name)) is not None
    ]


def count_statement(filters: RunFilter | None, cap: int | None) -> Select[Any]:
    """Count matching runs; with `cap`, read at most cap + 1 of them."""
    conds = run_conditions(filters)
    if cap is None:
        return select(func.count()).select_from(Run).where(*conds)
    if cap < 0:
        raise InvalidInputError("cap must not be negative")
    matching = select(Run.id).where(*conds).limit(cap + 1).subquery()
    return select(func.count()).select_from(matching)
