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
from chad_memory.stores.conversations import conversation_thread_id


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


Rule = Callable[[Any, RunFilter], ColumnElement[bool]]


def _conversation(conversation_id: str, filters: RunFilter) -> ColumnElement[bool]:
    """An OTLP conversation is a thread whose id derives from (actor, conversation id)."""
    if filters.actor is None:
        raise InvalidInputError("conversation_id needs an actor: conversations are per actor")
    return Run.thread_id == conversation_thread_id(filters.actor, conversation_id)


_RULES: dict[str, Rule] = {
    "tag": lambda tag, _: Run.tags.contains([tag]),
    "tags_any": lambda tags, _: Run.tags.overlap(tags),
    "tags_all": lambda tags, _: Run.tags.contains(tags),
    # jsonb @> served by ix_runs_metadata (GIN, jsonb_path_ops); not an equality test.
    "metadata": lambda wanted, _: Run.metadata_.contains(wanted),
    "created_after": lambda at, _: Run.created_at >= at,
    "created_before": lambda at, _: Run.created_at < at,
    "min_duration_ms": lambda ms, _: _duration_ms() >= ms,
    "max_duration_ms": lambda ms, _: _duration_ms() < ms,
    "min_cost_usd": lambda usd, _: _cost_usd() >= usd,
    "max_cost_usd": lambda usd, _: _cost_usd() < usd,
    "conversation_id": _conversation,
}
_COLUMNS = set(Run.__table__.c.keys())


def _rule(name: str) -> Rule:
    if name in _RULES:
        return _RULES[name]
    if name in _COLUMNS:
        column = Run.__table__.c[name]
        return lambda value, _: column == value
    raise RuntimeError(f"RunFilter.{name} has no rule in chad_memory.stores.run_filters")


_CONDITION_OF = {name: _rule(name) for name in RunFilter.model_fields}


def run_conditions(filters: RunFilter | None) -> list[ColumnElement[bool]]:
    if filters is None:
        return []
    return [
        _CONDITION_OF[name](value, filters)
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
