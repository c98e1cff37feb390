"""Datasets (items with versions), experiments on them, and the comparison of experiments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from chad_memory.schemas.base import (
    Input,
    JsonObject,
    JsonValue,
    Money,
    NotBool,
    Record,
    SafeText,
    ShortText,
    _metadata_field,
)

# The run metadata keys that put a run in an experiment, on the item it ran on.
EXPERIMENT_KEY = "chad.experiment_id"
ITEM_KEY = "chad.dataset_item_id"
Version = Annotated[int, Field(ge=0, le=2**31 - 1), NotBool]


class DatasetCreate(Input):
    name: ShortText
    description: SafeText | None = Field(default=None, max_length=10_000)
    metadata: JsonObject = Field(default_factory=dict)


class DatasetRecord(Record):
    id: uuid.UUID
    actor: str
    name: str
    description: str | None
    metadata: dict[str, Any] = _metadata_field
    # How many changes its items have seen; each change makes the next version.
    version: int
    created_at: datetime
    updated_at: datetime


class DatasetItemCreate(Input):
    """An item: what goes in, what should come out, and where it was taken from."""

    input: JsonValue | None = None
    expected_output: JsonValue | None = None
    metadata: JsonObject = Field(default_factory=dict)
    source_run_id: uuid.UUID | None = None
    source_step_id: uuid.UUID | None = None


class DatasetItemFromRun(Input):
    """An item taken from a run (its request payload and result) or from one of its steps
    (the step's input and output); `expected_output` replaces what the run produced."""

    run_id: uuid.UUID
    step_id: uuid.UUID | None = None
    expected_output: JsonValue | None = None
    metadata: JsonObject = Field(default_factory=dict)


class DatasetItemRecord(Record):
    """One item as of a version. `id` is this version's row; `item_id` is the item's id,
    the same in every version (what experiments name)."""

    id: uuid.UUID
    item_id: uuid.UUID
    dataset_id: uuid.UUID
    input: Any | None
    expected_output: Any | None
    metadata: dict[str, Any] = _metadata_field
    source_run_id: uuid.UUID | None
    source_step_id: uuid.UUID | None
    valid_from: int
    valid_to: int | None
    created_at: datetime


class DatasetChange(BaseModel):
    """What a change did: the dataset's new version and the items it wrote."""

    version: int
    items: list[DatasetItemRecord]


class ExperimentCreate(Input):
    name: ShortText
    dataset_id: uuid.UUID
    # The dataset version its items are read at; the current one when left out.
    dataset_version: Version | None = None
    description: SafeText | None = Field(default=None, max_length=10_000)
    metadata: JsonObject = Field(default_factory=dict)


class ExperimentRecord(Record):
    id: uuid.UUID
    actor: str
    name: str
    dataset_id: uuid.UUID
    dataset_version: int
    description: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime


class ExperimentResult(BaseModel):
    """One experiment's run on one item (`run_id` null: it has none yet)."""

    experiment_id: uuid.UUID
    run_id: uuid.UUID | None = None
    status: str | None = None
    output: Any | None = None
    cost_usd: Money | None = None
    duration_ms: float | None = None
    # Run-level scores by name (the latest of each name).
    scores: dict[str, bool | float | str] = Field(default_factory=dict)


class ComparedItem(BaseModel):
    item_id: uuid.UUID
    input: Any | None
    expected_output: Any | None
    results: list[ExperimentResult]
    # Per later experiment (by id), its difference from the first: numeric scores,
    # cost_usd and duration_ms, where both have a value.
    deltas: dict[uuid.UUID, dict[str, float]]


class ScoreSummary(BaseModel):
    count: int
    mean: float | None
    labels: dict[str, int]


class ExperimentSummary(BaseModel):
    experiment: ExperimentRecord
    runs: int
    succeeded: int
    cost_usd: Money
    mean_duration_ms: float | None
    scores: dict[str, ScoreSummary]


class Comparison(BaseModel):
    """Experiments side by side on their dataset's items (as of the first one's version)."""

    dataset_id: uuid.UUID
    dataset_version: int
    experiments: list[ExperimentSummary]
    items: list[ComparedItem]
