"""Datasets, experiments and their comparison over HTTP; the rules are the library's
(`chad_memory.stores.datasets`, `chad_memory.stores.experiments`).

Every change to a dataset's items answers `{"version": n, "items": [...]}`: the version
it made. Items are read as of any version with `?version=`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import Field

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import AUTH_RESPONSES, Problem
from chad_memory.errors import InvalidInputError
from chad_memory.request_caps import MAX_LIST_LIMIT
from chad_memory.schemas import Page
from chad_memory.schemas.datasets import (
    Comparison,
    DatasetChange,
    DatasetCreate,
    DatasetItemCreate,
    DatasetItemFromRun,
    DatasetItemRecord,
    DatasetRecord,
    ExperimentCreate,
    ExperimentRecord,
    Version,
)
from chad_memory.stores.datasets import parse_items_jsonl
from chad_memory.stores.limits import MAX_BATCH

router = APIRouter(tags=["datasets"], responses=AUTH_RESPONSES)

_OWNED: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "another actor's dataset, experiment or run"},
    404: {"model": Problem, "description": "no such dataset, item or experiment"},
}
JSONL_TYPES = ("application/x-ndjson", "application/jsonl")
MAX_JSONL_BYTES = 10 * 1024 * 1024

Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size.")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=512)]
NewItems = Annotated[list[DatasetItemCreate], Field(min_length=1, max_length=MAX_BATCH)]


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetRecord,
    responses={409: {"model": Problem, "description": "a dataset of that name exists"}},
)
async def create_dataset(body: DatasetCreate, caller: CurrentCaller) -> DatasetRecord:
    return await caller.datasets.create_dataset(body, actor=caller.actor)


@router.get("/datasets", response_model=Page[DatasetRecord])
async def list_datasets(
    caller: CurrentCaller, limit: Limit = 50, cursor: Cursor = None
) -> Page[DatasetRecord]:
    return await caller.datasets.list_datasets(caller.actor, limit=limit, cursor=cursor)


@router.get("/datasets/{dataset_id}", response_model=DatasetRecord, responses=_OWNED)
async def get_dataset(dataset_id: uuid.UUID, caller: CurrentCaller) -> DatasetRecord:
    return await caller.datasets.get_dataset(dataset_id, actor=caller.actor)


@router.delete("/datasets/{dataset_id}", status_code=204, response_class=Response, responses=_OWNED)
async def delete_dataset(dataset_id: uuid.UUID, caller: CurrentCaller) -> Response:
    """Its items and experiments go with it; runs stay."""
    await caller.datasets.delete_dataset(dataset_id, actor=caller.actor)
    return Response(status_code=204)


@router.get(
    "/datasets/{dataset_id}/items", response_model=Page[DatasetItemRecord], responses=_OWNED
)
async def list_items(
    dataset_id: uuid.UUID,
    caller: CurrentCaller,
    version: Annotated[Version | None, Query(description="as of this version")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DatasetItemRecord]:
    return await caller.datasets.list_items(
        dataset_id, actor=caller.actor, version=version, limit=limit, cursor=cursor
    )


@router.post(
    "/datasets/{dataset_id}/items",
    status_code=201,
    response_model=DatasetChange,
    responses=_OWNED,
)
async def add_items(
    dataset_id: uuid.UUID,
    body: Annotated[NewItems, Body()],
    caller: CurrentCaller,
) -> DatasetChange:
    """Items as a JSON list (all or none): one new version."""
    return await caller.datasets.add_items(dataset_id, body, actor=caller.actor)


@router.post(
    "/datasets/{dataset_id}/items/jsonl",
    status_code=201,
    response_model=DatasetChange,
    responses=_OWNED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in JSONL_TYPES},
        }
    },
)
async def add_items_jsonl(
    dataset_id: uuid.UUID, request: Request, caller: CurrentCaller
) -> DatasetChange:
    """Items in bulk as JSON Lines (one item object a line; all or none): one version."""
    await caller.datasets.get_dataset(
        dataset_id, actor=caller.actor
    )  # 403 / 404 before reading the body
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in JSONL_TYPES:
        raise InvalidInputError("send JSON Lines as application/x-ndjson")
    raw = await request.body()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise InvalidInputError("JSON Lines body is not UTF-8") from None
    return await caller.datasets.add_items(dataset_id, parse_items_jsonl(text), actor=caller.actor)


@router.post(
    "/datasets/{dataset_id}/items/from-run",
    status_code=201,
    response_model=DatasetChange,
    responses=_OWNED,
)
async def add_item_from_run(
    dataset_id: uuid.UUID, body: DatasetItemFromRun, caller: CurrentCaller
) -> DatasetChange:
    """An item from one of the caller's runs (or a step of it), in one call."""
    return await caller.datasets.add_item_from_run(dataset_id, body, actor=caller.actor)


@router.put(
    "/datasets/{dataset_id}/items/{item_id}", response_model=DatasetChange, responses=_OWNED
)
async def update_item(
    dataset_id: uuid.UUID,
    item_id: uuid.UUID,
    body: DatasetItemCreate,
    caller: CurrentCaller,
) -> DatasetChange:
    return await caller.datasets.update_item(dataset_id, item_id, body, actor=caller.actor)


@router.delete(
    "/datasets/{dataset_id}/items/{item_id}", response_model=DatasetChange, responses=_OWNED
)
async def delete_item(
    dataset_id: uuid.UUID, item_id: uuid.UUID, caller: CurrentCaller
) -> DatasetChange:
    """The item leaves the dataset from the new version on; older versions keep it."""
    return await caller.datasets.delete_item(dataset_id, item_id, actor=caller.actor)


@router.post(
    "/experiments",
    status_code=201,
    response_model=ExperimentRecord,
    responses={**_OWNED, 409: {"model": Problem, "description": "name taken"}},
)
async def create_experiment(body: ExperimentCreate, caller: CurrentCaller) -> ExperimentRecord:
    return await caller.experiments.create_experiment(body, actor=caller.actor)


@router.get("/experiments", response_model=Page[ExperimentRecord])
async def list_experiments(
    caller: CurrentCaller,
    dataset_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ExperimentRecord]:
    return await caller.experiments.list_experiments(
        caller.actor, dataset_id=dataset_id, limit=limit, cursor=cursor
    )


@router.get("/experiments/compare", response_model=Comparison, responses=_OWNED)
async def compare(
    caller: CurrentCaller,
    ids: Annotated[list[uuid.UUID], Query(min_length=1, max_length=5)],
) -> Comparison:
    """`?ids=A&ids=B`: per item each experiment's output, scores, cost, duration and the
    deltas from the first; per experiment the aggregates."""
    return await caller.experiments.compare(ids, actor=caller.actor)


@router.get("/experiments/{experiment_id}", response_model=ExperimentRecord, responses=_OWNED)
async def get_experiment(experiment_id: uuid.UUID, caller: CurrentCaller) -> ExperimentRecord:
    return await caller.experiments.get_experiment(experiment_id, actor=caller.actor)


@router.delete(
    "/experiments/{experiment_id}", status_code=204, response_class=Response, responses=_OWNED
)
async def delete_experiment(experiment_id: uuid.UUID, caller: CurrentCaller) -> Response:
    await caller.experiments.delete_experiment(experiment_id, actor=caller.actor)
    return Response(status_code=204)
