"""Scores and score configs over HTTP; the rules (ownership, types, re-sends) are the
library's (`chad_memory.stores.scores`).

`POST /runs/{id}/scores` scores a run (an unknown run is 404, as for its other
children); `POST /scores` scores any target named in the body (an unknown one is 422
naming `target_id`). A write answers 201 when it made a score and 200 when it updated
the one with the same id or Idempotency-Key.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from apps.core_api.answers import JsonAnswer, answer
from apps.core_api.auth import CurrentCaller
from apps.core_api.routers.runs import IdempotencyKey
from apps.core_api.schemas import AUTH_RESPONSES, Problem
from chad_memory.request_caps import MAX_LIST_LIMIT
from chad_memory.schemas import (
    Input,
    Page,
    ScoreConfigCreate,
    ScoreConfigRecord,
    ScoreCreate,
    ScoreFields,
    ScoreFilter,
    ScoreRecord,
    ShortText,
)
from chad_memory.vocabulary import ScoreSource, ScoreTarget

router = APIRouter(tags=["scores"], responses=AUTH_RESPONSES)

_OWNED: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "the target belongs to another actor"},
    404: {"model": Problem, "description": "no such run, score or config"},
}
_WRITTEN: dict[int | str, dict[str, Any]] = {
    **_OWNED,
    200: {"model": ScoreRecord, "description": "an existing score (same id or key) updated"},
    409: {"model": Problem, "description": "the Idempotency-Key names another score"},
}


class ScoreBody(ScoreFields):
    """POST /scores: a score and the target it judges."""

    target_type: ScoreTarget
    target_id: uuid.UUID

    def to_create(self, idempotency_key: str | None) -> ScoreCreate:
        return ScoreCreate.model_validate({**self.model_dump(), "idempotency_key": idempotency_key})


class _Paging(Input):
    limit: int = Field(default=50, ge=1, le=MAX_LIST_LIMIT)
    cursor: Annotated[str, Field(min_length=1, max_length=512)] | None = None


class ScoreListQuery(ScoreFilter, _Paging):
    """GET /scores: every score filter, plus paging."""


class RunScoreQuery(_Paging):
    """GET /runs/{id}/scores: the run comes from the path."""

    name: ShortText | None = None
    source: ScoreSource | None = None


@router.post(
    "/runs/{run_id}/scores", status_code=201, response_model=ScoreRecord, responses=_WRITTEN
)
async def score_run(
    run_id: uuid.UUID,
    body: ScoreFields,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKey = None,
) -> JsonAnswer:
    saved = await caller.scores.score_run(
        run_id, body, actor=caller.actor, idempotency_key=idempotency_key
    )
    return answer(saved.score, 201 if saved.created else 200)


@router.get("/runs/{run_id}/scores", response_model=Page[ScoreRecord], responses=_OWNED)
async def list_run_scores(
    run_id: uuid.UUID,
    query: Annotated[RunScoreQuery, Query()],
    caller: CurrentCaller,
) -> Page[ScoreRecord]:
    """The run's scores, its steps' and LLM calls' included, newest first."""
    filters = ScoreFilter(run_id=run_id, name=query.name, source=query.source)
    return await caller.scores.list_scores(
        caller.actor, filters, limit=query.limit, cursor=query.cursor
    )


@router.post("/scores", status_code=201, response_model=ScoreRecord, responses=_WRITTEN)
async def save_score(
    body: ScoreBody,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKey = None,
) -> JsonAnswer:
    saved = await caller.scores.save_score(body.to_create(idempotency_key), actor=caller.actor)
    return answer(saved.score, 201 if saved.created else 200)


@router.get("/scores", response_model=Page[ScoreRecord], responses=_OWNED)
async def list_scores(
    query: Annotated[ScoreListQuery, Query()], caller: CurrentCaller
) -> Page[ScoreRecord]:
    """The caller's scores across runs and threads, newest first."""
    filters = ScoreFilter.model_validate(query.model_dump(exclude={"limit", "cursor"}))
    return await caller.scores.list_scores(
        caller.actor, filters, limit=query.limit, cursor=query.cursor
    )


@router.get("/scores/{score_id}", response_model=ScoreRecord, responses=_OWNED)
async def get_score(score_id: uuid.UUID, caller: CurrentCaller) -> ScoreRecord:
    return await caller.scores.get_score(score_id, actor=caller.actor)


@router.delete("/scores/{score_id}", status_code=204, response_class=Response, responses=_OWNED)
async def delete_score(score_id: uuid.UUID, caller: CurrentCaller) -> Response:
    await caller.scores.delete_score(score_id, actor=caller.actor)
    return Response(status_code=204)


@router.post(
    "/score-configs",
    status_code=201,
    response_model=ScoreConfigRecord,
    responses={200: {"model": ScoreConfigRecord, "description": "the name's config replaced"}},
)
async def save_score_config(body: ScoreConfigCreate, caller: CurrentCaller) -> JsonAnswer:
    """Create a name's config (201) or replace it (200); it types the scores sent after."""
    saved = await caller.scores.save_score_config(body, actor=caller.actor)
    return answer(saved.config, 201 if saved.created else 200)


@router.get("/score-configs", response_model=list[ScoreConfigRecord])
async def list_score_configs(caller: CurrentCaller) -> list[ScoreConfigRecord]:
    return await caller.scores.list_score_configs(caller.actor)


@router.get("/score-configs/{name}", response_model=ScoreConfigRecord, responses=_OWNED)
async def get_score_config(name: str, caller: CurrentCaller) -> ScoreConfigRecord:
    return await caller.scores.get_score_config(name, actor=caller.actor)


@router.delete("/score-configs/{name}", status_code=204, response_class=Response, responses=_OWNED)
async def delete_score_config(name: str, caller: CurrentCaller) -> Response:
    await caller.scores.delete_score_config(name, actor=caller.actor)
    return Response(status_code=204)
