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

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import MetadataQuery, Problem
from chad_memory.request_caps import MAX_ITEMS_PER_REQUEST, MAX_LIST_LIMIT
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


Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="A previous page's `next_cursor`, passed back unchanged."),
]
NewMessages = Annotated[
    MessageCreate
    | Annotated[list[MessageCreate], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)],
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
async def create_thread(body: ThreadCreate, caller: CurrentCaller) -> ThreadRecord:
    return await caller.threads.create_thread(body, actor=caller.actor)


@router.get("/threads", response_model=Page[ThreadRecord], responses=AUTHED)
async def list_threads(
    caller: CurrentCaller,
    filters: Annotated[MetadataQuery, Query()],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ThreadRecord]:
    """The caller's threads, most recently active first."""
    page = await caller.threads.list_threads(
        caller.actor, limit=limit, cursor=cursor, metadata=filters.metadata
    )
    total = await caller.threads.count_threads(caller.actor, metadata=filters.metadata)
    return Page(items=page.items, total=total, next_cursor=page.next_cursor)


@router.get("/threads/{thread_id}", response_model=ThreadRecord, responses=OWNED)
async def get_thread(thread_id: uuid.UUID, caller: CurrentCaller) -> ThreadRecord:
    return await caller.threads.get_thread(thread_id, actor=caller.actor)


@router.patch("/threads/{thread_id}", response_model=ThreadRecord, responses=OWNED)
async def update_thread(
    thread_id: uuid.UUID, body: ThreadUpdate, caller: CurrentCaller
) -> ThreadRecord:
    return await caller.threads.update_thread(thread_id, body, actor=caller.actor)


@router.delete("/threads/{thread_id}", status_code=204, response_class=Response, responses=OWNED)
async def delete_thread(thread_id: uuid.UUID, caller: CurrentCaller) -> Response:
    """Its messages are deleted too; its runs stay, no longer linked to a thread."""
    await caller.threads.delete_thread(thread_id, actor=caller.actor)
    return Response(status_code=204)


@router.post(
    "/threads/{thread_id}/messages",
    status_code=201,
    response_model=MessageRecord | list[MessageRecord],
    responses=OWNED,
)
async def add_messages(
    thread_id: uuid.UUID, body: NewMessages, caller: CurrentCaller
) -> MessageRecord | list[MessageRecord]:
    """Answers in the shape it was sent: one record for one message, a list for a list."""
    if isinstance(body, MessageCreate):
        return await caller.threads.add_message(thread_id, body, actor=caller.actor)
    return await caller.threads.add_messages(thread_id, body, actor=caller.actor)


@router.get("/threads/{thread_id}/messages", response_model=Page[MessageRecord], responses=OWNED)
async def list_messages(
    thread_id: uuid.UUID,
    caller: CurrentCaller,
    filters: Annotated[MetadataQuery, Query()],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MessageRecord]:
    """Oldest first, in the order the messages were appended."""
    page = await caller.threads.list_messages(
        thread_id, limit=limit, cursor=cursor, actor=caller.actor, metadata=filters.metadata
    )
    total = await caller.threads.count_messages(thread_id, metadata=filters.metadata)
    return Page(items=page.items, total=total, next_cursor=page.next_cursor)


@router.delete("/messages/{message_id}", status_code=204, response_class=Response, responses=OWNED)
async def delete_message(message_id: uuid.UUID, caller: CurrentCaller) -> Response:
    await caller.threads.delete_message(message_id, actor=caller.actor)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs", response_model=Page[RunRecord], responses=OWNED)
async def list_thread_runs(
    thread_id: uuid.UUID,
    caller: CurrentCaller,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RunRecord]:
    """The caller's runs linked to this thread, newest first."""
    await caller.threads.get_thread(thread_id, actor=caller.actor)
    filters = RunFilter(actor=caller.actor, thread_id=thread_id)
    page = await caller.runs.list_runs(filters, limit=limit, cursor=cursor)
    total = await caller.runs.count_runs(filters)
    return Page(items=page.items, total=total, next_cursor=page.next_cursor)
