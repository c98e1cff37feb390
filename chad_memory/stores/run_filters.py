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

_RULES: dict[str, Callable[[Any], ColumnElement[bool]]] = {
    "tag": lambda tag: Run.tags.contains([tag]),
    "created_after": lambda at: Run.created_at >= at,
    "created_before": lambda at: Run.created_at < at,
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
