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
from chad_memory.models import Run
from chad_memory.schemas import RunFilter
from chad_memory.stores.conversations import conversation_thread_id

Rule = Callable[[Any, RunFilter], ColumnElement[bool]]


def _conversation(conversation_id: str, filters: RunFilter) -> ColumnElement[bool]:
    """An OTLP conversation is a thread whose id derives from (actor, conversation id)."""
    if filters.actor is None:
        raise InvalidInputError("conversation_id needs an actor: conversations are per actor")
    return Run.thread_id == conversation_thread_id(filters.actor, conversation_id)


_RULES: dict[str, Rule] = {
    "tag": lambda tag, _: Run.tags.contains([tag]),
    "created_after": lambda at, _: Run.created_at >= at,
    "created_before": lambda at, _: Run.created_at < at,
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
