"""How a `RunFilter` becomes SQL: one rule per filter field, checked complete at import.

A field named after a `runs` column is an equality test and needs no entry; any other
field needs one in `_RULES`. A field with neither raises at import, so a filter added to
the model is never silently ignored.
"""

from __future__ import annotations

import functools
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
from chad_memory.models import LLMCall, Run, Score
from chad_memory.schemas import RunFilter
from chad_memory.schemas.scores import ScoreCondition
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


# A score condition's statement depends on its operator (and, for `=`, on whether it
# compares a label or a number): one shape per kind, each with one parameter, the
# condition as JSON text {"name": ..., "value": ...}.
_SCORE_SHAPES: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "score_lt": lambda column, v: column < v,
    "score_le": lambda column, v: column <= v,
    "score_gt": lambda column, v: column > v,
    "score_ge": lambda column, v: column >= v,
    "score_eq": lambda column, v: column == v,
}
_SCORE_OPS = {"<": "score_lt", "<=": "score_le", ">": "score_gt", ">=": "score_ge"}


def _score_shape(condition: ScoreCondition) -> str:
    if condition.op != "=":
        return _SCORE_OPS[condition.op]
    return "score_label" if isinstance(condition.value, str) else "score_eq"


def _score_exists(param: Any, shape: str) -> ColumnElement[bool]:
    """EXISTS a run-level score of the name that compares so, per candidate run
    (ix_scores_run_id_name), or found from the score side (ix_scores_actor_name_value)."""
    wanted = cast(param, JSONB)
    # Keys as literals, not parameters: compiled statements bind only the filters' own.
    name = wanted.op("->>")(literal_column("'name'"))
    value = wanted.op("->>")(literal_column("'value'"))
    if shape == "score_label":
        compares = Score.label == value
    else:
        compares = _SCORE_SHAPES[shape](Score.value, cast(value, Double))
    return (
        select(literal_column("1"))
        .where(
            Score.run_id == Run.id,
            Score.target_type == literal_column("'run'"),
            Score.name == name,
            compares,
        )
        .exists()
    )


def _score_value(condition: ScoreCondition) -> str:
    value = condition.value
    return json.dumps(
        {"name": condition.name, "value": float(value) if isinstance(value, bool) else value}
    )


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


# Fields whose statement depends on their value, not only on their being set: the shape
# name stands for the field in `filter_names`, and has a rule of its own.
_SHAPED: dict[str, Callable[[Any], str]] = {"score": _score_shape}
for _shape in (*_SCORE_SHAPES, "score_label"):
    _RULES[_shape] = functools.partial(_score_exists, shape=_shape)
    _VALUES[_shape] = lambda condition, _: _score_value(condition)
    _TYPES[_shape] = Text()

_CONDITION_OF = {name: _rule(name) for name in RunFilter.model_fields if name not in _SHAPED}
_CONDITION_OF.update({name: _RULES[name] for name in _RULES if name.startswith("score_")})


def _set_filters(filters: RunFilter | None) -> list[tuple[str, Any]]:
    """(shape name, value) of each filter that is set, in field order."""
    if filters is None:
        return []
    found = []
    for name in RunFilter.model_fields:
        value = getattr(filters, name)
        if value is not None:
            found.append((_SHAPED[name](value) if name in _SHAPED else name, value))
    return found


def filter_names(filters: RunFilter | None) -> tuple[str, ...]:
    """The filters that are set, in field order: the statement's shape."""
    return tuple(name for name, _ in _set_filters(filters))


def filter_values(filters: RunFilter | None) -> dict[str, Any]:
    """The parameters (f_<field>) of the filters that are set."""
    values: dict[str, Any] = {}
    for name, value in _set_filters(filters):
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
