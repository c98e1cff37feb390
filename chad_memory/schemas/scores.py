"""Scores (feedback, annotations) and score configs.

A score's value is a number (numeric), a label (categorical) or true/false (boolean);
its JSON type says which, so `{"value": 0.8}`, `{"value": "good"}` and `{"value": true}`
need no separate type field. A name with a config must match it; a name without one
takes the type of its first use (see `chad_memory.stores.scores`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StrictBool, WithJsonSchema, model_validator

from chad_memory.schemas.base import (
    Input,
    JsonObject,
    Number,
    Record,
    SafeText,
    ShortText,
    UtcDatetime,
    _metadata_field,
)
from chad_memory.vocabulary import ScoreSource, ScoreTarget, ScoreType

# A finite number, a label, or a boolean; bool first so JSON true stays a boolean.
ScoreValue = StrictBool | Annotated[Number, Field(allow_inf_nan=False)] | ShortText
MAX_CATEGORIES = 100


def value_type(value: bool | float | str) -> ScoreType:
    """The kind of value a score holds, from its Python type."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "categorical"
    return "numeric"


class ScoreFields(Input):
    """What a client says about a score on a target it names elsewhere (the path)."""

    id: uuid.UUID | None = Field(
        default=None, description="your own id: sending it again updates that score"
    )
    name: ShortText
    value: ScoreValue
    source: ScoreSource = "api"
    comment: SafeText | None = Field(default=None, max_length=10_000)
    author: ShortText | None = None
    metadata: JsonObject = Field(default_factory=dict)


class ScoreCreate(ScoreFields):
    """A score as the library takes it: what it judges and, optionally, how it is keyed."""

    target_type: ScoreTarget
    target_id: uuid.UUID
    idempotency_key: ShortText | None = None


class ScoreRecord(Record):
    """A stored score. `run_id` is set for run, step and LLM call targets (the run they
    belong to); `target_id` is the id of what was scored."""

    id: uuid.UUID
    actor: str
    target_type: ScoreTarget
    target_id: uuid.UUID
    run_id: uuid.UUID | None
    name: str
    data_type: ScoreType
    value: bool | float | str
    source: ScoreSource
    comment: str | None
    author: str | None
    metadata: dict[str, Any] = _metadata_field
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime


class ScoreFilter(Input):
    """Which scores a list returns; every field narrows."""

    run_id: uuid.UUID | None = None
    target_type: ScoreTarget | None = None
    target_id: uuid.UUID | None = None
    name: ShortText | None = None
    source: ScoreSource | None = None
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None


ScoreOp = Literal["<", "<=", ">", ">=", "="]
# `helpfulness<0.5`, `verdict=correct`, `user_thumbs=true`: a name, an operator, a value.
SCORE_CONDITION = re.compile(r"^\s*([^<>=]+?)\s*(<=|>=|<|>|=)\s*(.+?)\s*$", re.S)


def _condition_text(value: Any) -> Any:
    """`name<op>value` text as the condition's fields; any other value is left as it is."""
    if not isinstance(value, str):
        return value
    match = SCORE_CONDITION.match(value)
    if match is None:
        raise ValueError("a score condition is name, operator, value: helpfulness<0.5")
    name, op, text = match.groups()
    parsed: bool | float | str = text
    if text in ("true", "false"):
        parsed = text == "true"
    else:
        try:
            parsed = float(text)
        except ValueError:
            parsed = text
    return {"name": name, "op": op, "value": parsed}


class ScoreCondition(Input):
    """Runs with a run-level score of `name` whose value compares so with `value`
    (`<`, `<=`, `>`, `>=` take a number; `=` a number, label or boolean)."""

    name: ShortText
    op: ScoreOp
    value: ScoreValue

    @property
    def text(self) -> str:
        """The condition as `name<op>value` text, which parses back to it."""
        value = self.value
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        return f"{self.name}{self.op}{shown}"

    @model_validator(mode="after")
    def _ordered_values_are_numbers(self) -> ScoreCondition:
        if self.op != "=" and value_type(self.value) != "numeric":
            raise ValueError(f"{self.op} compares numbers; use = for a label or a boolean")
        return self


# A condition as a model, or as its text (what a query string carries, and what the
# OpenAPI document describes).
ScoreConditionValue = Annotated[
    ScoreCondition,
    BeforeValidator(_condition_text),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SCORE_CONDITION.pattern,
            "description": (
                "a run-level score meeting name<op>value: helpfulness<0.5, "
                "helpfulness>=0.8, verdict=correct, user_thumbs=false"
            ),
        }
    ),
]


class ScoreConfigCreate(Input):
    """A name's type, with a range (numeric) or the allowed labels (categorical)."""

    name: ShortText
    data_type: ScoreType
    min_value: Annotated[Number, Field(allow_inf_nan=False)] | None = None
    max_value: Annotated[Number, Field(allow_inf_nan=False)] | None = None
    categories: (
        Annotated[list[ShortText], Field(min_length=1, max_length=MAX_CATEGORIES)] | None
    ) = None
    description: SafeText | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> ScoreConfigCreate:
        numeric = self.data_type == "numeric"
        if not numeric and (self.min_value is not None or self.max_value is not None):
            raise ValueError("min_value and max_value are for numeric scores only")
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise ValueError("min_value must not be above max_value")
        if self.data_type == "categorical":
            if not self.categories:
                raise ValueError("a categorical score config needs its categories")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("categories must not repeat")
        elif self.categories is not None:
            raise ValueError("categories are for categorical scores only")
        return self


class ScoreConfigRecord(Record):
    id: uuid.UUID
    actor: str
    name: str
    data_type: ScoreType
    min_value: float | None
    max_value: float | None
    categories: list[str] | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class ScoreAggregate(Record):
    """Scores of one name in one group: how many, their mean (numeric and boolean: the
    share of true) and, for labels, how many of each."""

    group: dict[str, str | None]
    name: str
    count: int
    mean: float | None
    labels: dict[str, int]
