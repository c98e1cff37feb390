"""How a `RunFilter` becomes SQL: one rule per filter field, checked complete at import.

A field named after a `runs` column is an equality test and needs no entry; any other
field needs one in `_RULES`. A field with neither raises at import, so a filter added to
the model is never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from chad_memory.errors import InvalidInputError
from chad_memory.models import LLMCall, Run
from chad_memory.schemas import RunFilter
from chad_memory.stores.conversations import conversation_thread_id


def _duration_ms() -> ColumnElement[Any]:
    """completed_at - started_at in ms; null (so never a match) unless both are set."""
    return func.extract("epoch", Run.completed_at - Run.started_at) * literal_column("1000")


def _cost_usd() -> ColumnElement[Any]:
    """The sum of the run's LLM call costs (0 without any), per candidate run through
    ix_llm_calls_run_id_created_at."""
    return (
        # A literal 0, not a parameter: compiled statements bind only the filters' own.
        select(func.coalesce(func.sum(LLMCall.cost_usd), literal_column("0")))
        .where(LLMCall.run_id == Run.id)
        .scalar_subquery()
    )


def _conversation(conversation_id: str, filters: RunFilter) -> Any:
    """An OTLP conversation is a thread whose id derives from (actor, conversation id)."""
    if filters.actor is None:
        raise InvalidInputError("conversation_id needs an actor: conversations are per actor")
    return conversation_thread_id(filters.actor, conversation_id)


# Each rule takes the filter's bind parameter (named f_<field>, typed like its column).
_RULES: dict[str, Callable[[Any], ColumnElement[bool]]] = {
    "tag": lambda tag: Run.tags.contains(tag),
    "tags_any": lambda tags: Run.tags.overlap(tags),
    "tags_all": lambda tags: Run.tags.contains(tags),
    # jsonb @> served by ix_runs_metadata (GIN, jsonb_path_ops); not an equality test.
    # The object travels as JSON text and is cast in SQL: the same parameter then works
    # on the driver path (SQLAlchemy's jsonb codec wants text) and through SQLAlchemy.
    "metadata": lambda wanted: Run.metadata_.contains(cast(wanted, JSONB)),
    "created_after": lambda at: Run.created_at >= at,
    "created_before": lambda at: Run.created_at < at,
    "min_duration_ms": lambda ms: _duration_ms() >= ms,
    "max_duration_ms": lambda ms: _duration_ms() < ms,
    "min_cost_usd": lambda usd: _cost_usd() >= usd,
    "max_cost_usd": lambda usd: _cost_usd() < usd,
    "conversation_id": lambda thread_id: Run.thread_id == thread_id,
}
# How a filter value becomes its parameter, where it is not the value itself.
_VALUES: dict[str, Callable[[Any, RunFilter], Any]] = {
    "tag": lambda tag, _: [tag],
    "metadata": lambda wanted, _: json.dumps(wanted),
    "conversation_id": _conversation,
}
_TYPES: dict[str, Any] = {
    "tag": Run.tags.type,
    "tags_any": Run.tags.type,
    "tags_all": Run.tags.type,
    "metadata": Text(),
    "created_after": Run.created_at.type,
    "created_before": Run.created_at.type,
    "min_duration_ms": Double(),
    "max_duration_ms": Double(),
    "min_cost_usd": LLMCall.cost_usd.type,
    "max_cost_usd": LLMCall.cost_usd.type,
    "conversation_id": Run.thread_id.type,
}
_COLUMNS = set(Run.__table__.c.keys())


def _rule(name: str) -> Callable[[Any], ColumnElement[bool]]:
    if name in _RULES:
        return _RULES[name]
    if name in _COLUMNS:
        column = Run.__table__.c[name]
        _TYPES[name] = column.type
        return lambda value: column == value
    raise RuntimeError(f"RunFilter.{name} has no rule in chad_memory.stores.run_filters")


_CONDITION_OF = {name: _rule(name) for name in RunFilter.model_fields}


def filter_names(filters: RunFilter | None) -> tuple[str, ...]:
    """The filters that are set, in field order: the statement's shape."""
    if filters is None:
        return ()
    return tuple(name for name in RunFilter.model_fields if getattr(filters, name) is not None)


def filter_values(filters: RunFilter | None) -> dict[str, Any]:
    """The parameters (f_<field>) of the filters that are set."""
    values: dict[str, Any] = {}
    for name in filter_names(filters):
        value = getattr(filters, name)
        assert filters is not None
        values[f"f_{name}"] = _VALUES[name](value, filters) if name in _VALUES else value
    return values


def filter_conditions(
    names: tuple[str, ...], values: dict[str, Any] | None = None
) -> list[ColumnElement[bool]]:
    """The conditions for these filters, on named parameters (see `filter_values`), with
    their values bound when `values` is given."""
    conds = []
    for name in names:
        key = f"f_{name}"
        param = (
            bindparam(key, type_=_TYPES[name])
            if values is None
            else bindparam(key, values[key], type_=_TYPES[name])
        )
        conds.append(_CONDITION_OF[name](param))
    return conds


def run_conditions(filters: RunFilter | None) -> list[ColumnElement[bool]]:
    """The conditions for `filters`, values bound (for statements run through SQLAlchemy)."""
    return filter_conditions(filter_names(filters), filter_values(filters))


def count_shape(names: tuple[str, ...], capped: bool) -> Select[Any]:
    """Count matching runs; capped, read at most `count_cap` + 1 of them."""
    conds = filter_conditions(names)
    if not capped:
        return select(func.count()).select_from(Run).where(*conds)
    matching = select(Run.id).where(*conds).limit(bindparam("count_cap", type_=Integer))
    return select(func.count()).select_from(matching.subquery())


def count_statement(filters: RunFilter | None, cap: int | None) -> Select[Any]:
    """Count matching runs; with `cap`, read at most cap + 1 of them."""
    if cap is not None and cap < 0:
        raise InvalidInputError("cap must not be negative")
    values = filter_values(filters)
    if cap is not None:
        values["count_cap"] = cap + 1
    return count_shape(filter_names(filters), cap is not None).params(values)
