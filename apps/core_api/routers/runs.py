"""/runs: what dashboards read and what agents outside Python write.

Every route resolves the actor first (`CurrentActor`) and hands it to the store, which
decides ownership (403/404) inside the same transaction as the work: one pool checkout
per request. Library exceptions become HTTP answers in `errors.py`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import TypeAdapter

from apps.core_api.answers import JsonAnswer, answer, answer_list
from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import (
    AUTH_RESPONSES,
    TOTAL_CAP,
    ArtifactCreateBody,
    LLMCallCreateBody,
    Problem,
    RunCreateBody,
    RunDetail,
    RunList,
    RunListQuery,
    StepBatch,
    StepCreateBody,
)
from chad_memory.errors import InvalidInputError
from chad_memory.request_caps import MAX_ITEMS_PER_REQUEST
from chad_memory.schemas import (
    ArtifactRecord,
    LLMCallRecord,
    Page,
    RunMemory,
    RunRecord,
    RunStats,
    RunUpdate,
    StepRecord,
)

_RUN_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem, "description": "the run belongs to another actor"},
    404: {"model": Problem, "description": "no run with this id"},
}

router = APIRouter(prefix="/runs", tags=["runs"], responses=AUTH_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key and body return the first run (200)",
    ),
]


def fingerprint(body: RunCreateBody) -> str:
    """SHA-256 of the body's canonical JSON: same meaning, same fingerprint.

    Computed on the validated model (defaults filled, keys sorted, no whitespace), so a
    retry that re-serialises its JSON differently still counts as the same request.
    """
    canonical = json.dumps(
        body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


ChildLimit = Annotated[int, Query(ge=1, le=MAX_ITEMS_PER_REQUEST, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="A previous page's `X-Next-Cursor`, passed back unchanged."),
]


_STEPS = TypeAdapter(list[StepRecord])
_ARTIFACTS = TypeAdapter(list[ArtifactRecord])
_LLM_CALLS = TypeAdapter(list[LLMCallRecord])


def _paged(adapter: TypeAdapter[list[Any]], page: Page[Any]) -> JsonAnswer:
    """Child lists answer a JSON list; the next page's cursor is the X-Next-Cursor header."""
    headers = None if page.next_cursor is None else {"X-Next-Cursor": page.next_cursor}
    return answer_list(adapter, page.items, headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=RunRecord,
    responses={
        200: {"model": RunRecord, "description": "replay of an earlier request (same key)"},
        403: {"model": Problem, "description": "thread_id names another actor's thread"},
        404: {"model": Problem, "description": "thread_id names no thread"},
        409: {"model": Problem, "description": "same Idempotency-Key still in progress"},
        422: {"model": Problem, "description": "invalid body, or Idempotency-Key reused"},
    },
)
async def create_run(
    body: RunCreateBody,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKey = None,
) -> JsonAnswer:
    """Create a run owned by the caller (201); a retry with the same key answers 200."""
    created = await caller.runs.create_run(
        body.to_create(caller.actor, idempotency_key),
        fingerprint=fingerprint(body) if idempotency_key is not None else None,
    )
    return answer(created.run, 200 if created.replayed else 201)


@router.get("", response_model=RunList, responses={422: {"model": Problem}})
async def list_runs(
    query: Annotated[RunListQuery, Query()],
    caller: CurrentCaller,
) -> JsonAnswer:
    """The caller's runs, newest first, as summaries (no payloads).

    `total` is exact up to TOTAL_CAP matches; above that it is TOTAL_CAP with
    `X-Total-Exact: false`, unless `exact_total=true` asks for the full O(n) count.
    """
    if query.cursor is not None and query.offset:
        raise InvalidInputError("use either offset or cursor, not both")
    page = await caller.read_runs.list_run_summaries(
        query.to_filter(caller.actor),
        limit=query.limit,
        offset=query.offset,
        cursor=query.cursor,
        with_total=True,
        total_cap=None if query.exact_total else TOTAL_CAP,
    )
    assert page.total is not None
    total = page.total
    exact = query.exact_total or total <= TOTAL_CAP
    listed = RunList.model_construct(
        items=page.items,
        total=min(total, TOTAL_CAP) if not exact else total,
        next_cursor=page.next_cursor,
    )
    return answer(listed, headers={"X-Total-Exact": "true" if exact else "false"})


@router.get("/{run_id}", response_model=RunDetail, responses=_RUN_ERRORS)
async def get_run(run_id: uuid.UUID, caller: CurrentCaller) -> JsonAnswer:
    run, artifacts = await caller.read_runs.get_run_detail(run_id, actor=caller.actor)
    return answer(RunDetail.model_construct(**run.__dict__, artifacts=artifacts))


@router.patch(
    "/{run_id}",
    response_model=RunRecord,
    responses={**_RUN_ERRORS, 409: {"model": Problem, "description": "status cannot go back"}},
)
async def update_run(run_id: uuid.UUID, changes: RunUpdate, caller: CurrentCaller) -> RunRecord:
    """Set status (forward only), result, error, completed_at and other fields given."""
    return await caller.runs.update_run(run_id, changes, actor=caller.actor)


@router.delete("/{run_id}", status_code=204, response_class=Response, responses=_RUN_ERRORS)
async def delete_run(run_id: uuid.UUID, caller: CurrentCaller) -> Response:
    """Delete the run; its steps, artifacts and LLM calls go with it."""
    await caller.runs.delete_run(run_id, actor=caller.actor)
    return Response(status_code=204)


@router.get("/{run_id}/steps", response_model=list[StepRecord], responses=_RUN_ERRORS)
async def get_steps(
    run_id: uuid.UUID,
    caller: CurrentCaller,
    limit: ChildLimit = MAX_ITEMS_PER_REQUEST,
    cursor: Cursor = None,
) -> JsonAnswer:
    """The run's steps by step_index, at most `limit`; X-Next-Cursor names the next page."""
    page = await caller.read_runs.list_steps(run_id, actor=caller.actor, limit=limit, cursor=cursor)
    return _paged(_STEPS, page)


@router.post(
    "/{run_id}/steps",
    status_code=201,
    response_model=list[StepRecord],
    responses={**_RUN_ERRORS, 409: {"model": Problem, "description": "step_index taken"}},
)
async def add_steps(
    run_id: uuid.UUID,
    body: Annotated[StepCreateBody | StepBatch, Body()],
    caller: CurrentCaller,
) -> JsonAnswer:
    """One step or a list of them (all land or none do); answers the stored steps."""
    steps = body if isinstance(body, list) else [body]
    saved = await caller.runs.save_steps([s.to_create(run_id) for s in steps], actor=caller.actor)
    return answer_list(_STEPS, saved, 201)


@router.get("/{run_id}/artifacts", response_model=list[ArtifactRecord], responses=_RUN_ERRORS)
async def get_artifacts(
    run_id: uuid.UUID,
    caller: CurrentCaller,
    limit: ChildLimit = MAX_ITEMS_PER_REQUEST,
    cursor: Cursor = None,
) -> JsonAnswer:
    page = await caller.read_runs.list_artifacts(
        run_id, actor=caller.actor, limit=limit, cursor=cursor
    )
    return _paged(_ARTIFACTS, page)


@router.post(
    "/{run_id}/artifacts", status_code=201, response_model=ArtifactRecord, responses=_RUN_ERRORS
)
async def add_artifact(
    run_id: uuid.UUID, body: ArtifactCreateBody, caller: CurrentCaller
) -> ArtifactRecord:
    return await caller.runs.save_artifact(body.to_create(run_id), actor=caller.actor)


@router.get("/{run_id}/llm-calls", response_model=list[LLMCallRecord], responses=_RUN_ERRORS)
async def get_llm_calls(
    run_id: uuid.UUID,
    caller: CurrentCaller,
    limit: ChildLimit = MAX_ITEMS_PER_REQUEST,
    cursor: Cursor = None,
) -> JsonAnswer:
    page = await caller.read_runs.list_llm_calls(
        run_id, actor=caller.actor, limit=limit, cursor=cursor
    )
    return _paged(_LLM_CALLS, page)


@router.post(
    "/{run_id}/llm-calls", status_code=201, response_model=LLMCallRecord, responses=_RUN_ERRORS
)
async def add_llm_call(
    run_id: uuid.UUID, body: LLMCallCreateBody, caller: CurrentCaller
) -> LLMCallRecord:
    return await caller.runs.save_llm_call(body.to_create(run_id), actor=caller.actor)


@router.get("/{run_id}/stats", response_model=RunStats, responses=_RUN_ERRORS)
async def get_stats(run_id: uuid.UUID, caller: CurrentCaller) -> RunStats:
    """Step and call counts, tokens, cost (a decimal string), duration, latency mean/p95."""
    return await caller.read_runs.get_run_stats(run_id, actor=caller.actor)


@router.get("/{run_id}/memory", response_model=RunMemory, responses=_RUN_ERRORS)
async def run_memory(
    run_id: uuid.UUID,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=200, description="Per direction, newest first.")] = 50,
) -> RunMemory:
    """The memories the run wrote, and those its searches returned (`run_id` on search)."""
    return await caller.read_vectors.run_memory(run_id, actor=caller.actor, limit=limit)
