"""/runs: what dashboards read and what agents outside Python write.

Every route resolves the actor first (`CurrentActor`), and every route under
/runs/{run_id} loads the run through `OwnedRun`, so ownership (403/404/422) is decided
once, before a handler runs. Library exceptions become HTTP answers in `errors.py`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response

from apps.core_api.auth import CurrentActor, OwnedRun
from apps.core_api.deps import RunStoreDep, ThreadStoreDep
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
from chad_memory.schemas import (
    ArtifactRecord,
    LLMCallRecord,
    RunFilter,
    RunRecord,
    RunStats,
    RunUpdate,
    StepRecord,
)
from chad_memory.stores import PostgresStore

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


async def _check_step_refs(
    store: PostgresStore, run_id: uuid.UUID, refs: Iterable[uuid.UUID | None]
) -> None:
    """Children may point only at steps of their own run, never at another actor's."""
    wanted = {ref for ref in refs if ref is not None}
    if not wanted:
        return
    unknown = wanted - await store.get_step_ids(run_id)
    if unknown:
        names = ", ".join(sorted(str(u) for u in unknown))
        raise InvalidInputError(f"step ids not found in run {run_id}: {names}")


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
    actor: CurrentActor,
    store: RunStoreDep,
    threads: ThreadStoreDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RunRecord:
    """Create a run owned by the caller (201); a retry with the same key answers 200."""
    if body.thread_id is not None:
        await threads.get_thread(body.thread_id, actor=actor)
    created = await store.create_run(
        body.to_create(actor, idempotency_key),
        fingerprint=fingerprint(body) if idempotency_key is not None else None,
    )
    if created.replayed:
        response.status_code = 200
    return created.run


@router.get("", response_model=RunList, responses={422: {"model": Problem}})
async def list_runs(
    query: Annotated[RunListQuery, Query()],
    actor: CurrentActor,
    store: RunStoreDep,
    response: Response,
) -> RunList:
    """The caller's runs, newest first, as summaries (no payloads).

    `total` is exact up to TOTAL_CAP matches; above that it is TOTAL_CAP with
    `X-Total-Exact: false`, unless `exact_total=true` asks for the full O(n) count.
    """
    if query.cursor is not None and query.offset:
        raise InvalidInputError("use either offset or cursor, not both")
    filters = RunFilter(
        actor=actor,
        **query.model_dump(
            include={
                "status",
                "name",
                "agent",
                "thread_id",
                "trace_id",
                "tag",
                "tags_any",
                "tags_all",
                "metadata",
                "created_after",
                "created_before",
                "min_duration_ms",
                "max_duration_ms",
                "min_cost_usd",
                "max_cost_usd",
            }
        ),
    )
    page = await store.list_run_summaries(
        filters,
        limit=query.limit,
        offset=query.offset,
        cursor=query.cursor,
        with_total=True,
        total_cap=None if query.exact_total else TOTAL_CAP,
    )
    assert page.total is not None
    total = page.total
    exact = query.exact_total or total <= TOTAL_CAP
    response.headers["X-Total-Exact"] = "true" if exact else "false"
    return RunList(
        items=page.items,
        total=min(total, TOTAL_CAP) if not exact else total,
        next_cursor=page.next_cursor,
    )


@router.get("/{run_id}", response_model=RunDetail, responses=_RUN_ERRORS)
async def get_run(run: OwnedRun, store: RunStoreDep) -> RunDetail:
    artifacts = await store.get_artifacts(run.id)
    return RunDetail(**run.model_dump(), artifacts=artifacts)


@router.patch(
    "/{run_id}",
    response_model=RunRecord,
    responses={**_RUN_ERRORS, 409: {"model": Problem, "description": "status cannot go back"}},
)
async def update_run(
    run: OwnedRun, changes: RunUpdate, store: RunStoreDep, threads: ThreadStoreDep
) -> RunRecord:
    """Set status (forward only), result, error, completed_at and other fields given."""
    if changes.thread_id is not None:
        await threads.get_thread(changes.thread_id, actor=run.actor)
    return await store.update_run(run.id, changes)


@router.delete("/{run_id}", status_code=204, response_class=Response, responses=_RUN_ERRORS)
async def delete_run(run: OwnedRun, store: RunStoreDep) -> Response:
    """Delete the run; its steps, artifacts and LLM calls go with it."""
    await store.delete_run(run.id)
    return Response(status_code=204)


@router.get("/{run_id}/steps", response_model=list[StepRecord], responses=_RUN_ERRORS)
async def get_steps(run: OwnedRun, store: RunStoreDep) -> list[StepRecord]:
    return await store.get_steps(run.id)


@router.post(
    "/{run_id}/steps",
    status_code=201,
    response_model=list[StepRecord],
    responses={**_RUN_ERRORS, 409: {"model": Problem, "description": "step_index taken"}},
)
async def add_steps(
    run: OwnedRun,
    body: Annotated[StepCreateBody | StepBatch, Body()],
    store: RunStoreDep,
) -> list[StepRecord]:
    """One step or a list of them (all land or none do); answers the stored steps."""
    steps = body if isinstance(body, list) else [body]
    await _check_step_refs(store, run.id, (s.parent_step_id for s in steps))
    return await store.save_steps([s.to_create(run.id) for s in steps])


@router.get("/{run_id}/artifacts", response_model=list[ArtifactRecord], responses=_RUN_ERRORS)
async def get_artifacts(run: OwnedRun, store: RunStoreDep) -> list[ArtifactRecord]:
    return await store.get_artifacts(run.id)


@router.post(
    "/{run_id}/artifacts", status_code=201, response_model=ArtifactRecord, responses=_RUN_ERRORS
)
async def add_artifact(
    run: OwnedRun, body: ArtifactCreateBody, store: RunStoreDep
) -> ArtifactRecord:
    await _check_step_refs(store, run.id, [body.step_id])
    return await store.save_artifact(body.to_create(run.id))


@router.get("/{run_id}/llm-calls", response_model=list[LLMCallRecord], responses=_RUN_ERRORS)
async def get_llm_calls(run: OwnedRun, store: RunStoreDep) -> list[LLMCallRecord]:
    return await store.get_llm_calls(run.id)


@router.post(
    "/{run_id}/llm-calls", status_code=201, response_model=LLMCallRecord, responses=_RUN_ERRORS
)
async def add_llm_call(run: OwnedRun, body: LLMCallCreateBody, store: RunStoreDep) -> LLMCallRecord:
    await _check_step_refs(store, run.id, [body.step_id])
    return await store.save_llm_call(body.to_create(run.id))


@router.get("/{run_id}/stats", response_model=RunStats, responses=_RUN_ERRORS)
async def get_stats(run: OwnedRun, store: RunStoreDep) -> RunStats:
    """Step and call counts, tokens, cost (a decimal string), duration, latency mean/p95."""
    return await store.get_run_stats(run.id)
