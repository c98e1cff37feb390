"""Conversations over HTTP: threads, their messages, and the runs linked to them.

Same rules as /runs: the caller is the actor (401 without one), another actor's thread
is 403, an unknown one 404, a malformed id or body 422. Bodies never carry the actor, ids
or timestamps: the store sets those.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field

from apps.core_api.auth import CurrentActor
from apps.core_api.deps import RunStoreDep, ThreadStoreDep
from apps.core_api.schemas import Problem
from chad_memory.schemas import (
    MessageCreate,
    MessageRecord,
    Page,
    RunFilter,
    RunRecord,
    ThreadCreate,
    ThreadRecord,
    ThreadUpdate,
)

router = APIRouter(tags=["threads"])

MAX_MESSAGES_PER_REQUEST = 1000

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="A previous page's `next_cursor`, passed back unchanged."),
]
NewMessages = Annotated[
    MessageCreate
    | Annotated[list[MessageCreate], Field(min_length=1, max_length=MAX_MESSAGES_PER_REQUEST)],
    Body(description="One message, or a list appended in the order given."),
]


class ErrorDetail(BaseModel):
    detail: str


# Documented in /openapi.json; the answers themselves come from auth and errors.STATUS_BY_ERROR.
AUTHED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "No valid API key (or X-Actor-ID)"},
    # Library errors answer {"detail": "..."}, pydantic's a list: Problem allows both.
    422: {"model": Problem, "description": "invalid input"},
    503: {"model": Problem, "description": "database unavailable; retry after Retry-After"},
}
OWNED: dict[int | str, dict[str, Any]] = {
    **AUTHED,
    403: {"model": ErrorDetail, "description": "Another actor's thread"},
    404: {"model": ErrorDetail, "description": "No such thread"},
}


@router.post("/threads", status_code=201, response_model=ThreadRecord, responses=AUTHED)
async def create_thread(
    body: ThreadCreate, actor: CurrentActor, threads: ThreadStoreDep
) -> ThreadRecord:
    return await threads.create_thread(body, actor=actor)


@router.get("/threads", response_model=Page[ThreadRecord], responses=AUTHED)
async def list_threads(
    actor: CurrentActor, threads: ThreadStoreDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[ThreadRecord]:
    """The caller's threads, most recently active first."""
    page = await threads.list_threads(actor, limit=limit, cursor=cursor)
    total = await threads.count_threads(actor)
    return Page(items=page.items, total=total, next_cursor=page.next_cursor)


@router.get("/threads/{thread_id}", response_model=ThreadRecord, responses=OWNED)
async def get_thread(
    thread_id: uuid.UUID, actor: CurrentActor, threads: ThreadStoreDep
) -> ThreadRecord:
    return await threads.get_thread(thread_id, actor=actor)


@router.patch("/threads/{thread_id}", response_model=ThreadRecord, responses=OWNED)
async def update_thread(
    thread_id: uuid.UUID, body: ThreadUpdate, actor: CurrentActor, threads: ThreadStoreDep
) -> ThreadRecord:
    return await threads.update_thread(thread_id, body, actor=actor)


@router.delete("/threads/{thread_id}", status_code=204, response_class=Response, responses=OWNED)
async def delete_thread(
    thread_id: uuid.UUID, actor: CurrentActor, threads: ThreadStoreDep
) -> Response:
    """Its messages are deleted too; its runs stay, no longer linked to a thread."""
    await threads.delete_thread(thread_id, actor=actor)
    return Response(status_code=204)


@router.post(
    "/threads/{thread_id}/messages",
    status_code=201,
    response_model=MessageRecord | list[MessageRecord],
    responses=OWNED,
)
async def add_messages(
    thread_id: uuid.UUID, body: NewMessages, actor: CurrentActor, threads: ThreadStoreDep
) -> MessageRecord | list[MessageRecord]:
    """Answers in the shape it was sent: one record for one message, a list for a list."""
    if isinstance(body, MessageCreate):
        return await threads.add_message(thread_id, body, actor=actor)
    return await threads.add_messages(thread_id, body, actor=actor)


@router.get("/threads/{thread_id}/messages", response_model=Page[MessageRecord], responses=OWNED)
async def list_messages(
    thread_id: uuid.UUID,
    actor: CurrentActor,
    threads: ThreadStoreDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MessageRecord]:
    """Oldest first, in the order the messages were appended."""
    page = await threads.list_messages(thread_id, limit=limit, cursor=cursor, actor=actor)
    total = await threads.count_messages(thread_id)
    return Page(items=page.items, total=total, next_cursor=page.next_cursor)


@router.delete("/messages/{message_id}", status_code=204, response_class=Response, responses=OWNED)
async def delete_message(
    message_id: uuid.UUID, actor: CurrentActor, threads: ThreadStoreDep
) -> Response:
    await threads.delete_message(message_id, actor=actor)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs", response_model=Page[RunRecord], responses=OWNED)
async def list_thread_runs(
    thread_id: uuid.UUID,
    actor: CurrentActor,
    threads: ThreadStoreDep,
    runs: RunStoreDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RunRecord]:
    """The caller's runs linked to this thread, newest first."""
    await threads.get_thread(thread_id, actor=actor)
    filters = RunFilter(actor=actor, thread_id=thread_id)
    page = await runs.list_runs(filters, limit=limit, cursor=cursor)
    total = await runs.count_runs(filters)
    return Page(items=page.items, total=total, next_cursor=page.next_cursor)
