"""AgentKit's thread API at /api: its eight calls, envelopes and answers, over ThreadStore.

AgentKit's front end (`threadsApi` / `messagesApi`) reads a JSON body from every answer,
expects `{"threads": [...]}` and `{"messages": [...]}`, and knows no 201, 204 or 403. So
these routes answer 200 with a body, and another actor's thread or message is a 404 with
AgentKit's own body (`{"detail": "Thread not found"}`), exactly like one that does not
exist: nothing tells a caller which ids exist. Ids are opaque strings in that protocol, so
a string that is not one of our UUIDs names nothing either: 404, not 422. Bad bodies and
query parameters get the usual 422 with `detail`.

Every rule (ownership, defaults, ordering, validation) is the store's and the library
input models'; this module only renames shapes. The native /threads API is unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import Problem
from chad_memory.errors import ForbiddenError, NotFoundError
from chad_memory.request_caps import MAX_LIST_LIMIT, MAX_OFFSET
from chad_memory.schemas import (
    Input,
    JsonObject,
    MessageCreate,
    MessageRecord,
    SafeText,
    ShortText,
    ThreadCreate,
    ThreadRecord,
    ThreadUpdate,
)
from chad_memory.vocabulary import MessageRole

router = APIRouter(prefix="/api", tags=["agentkit"])

THREAD_NOT_FOUND = "Thread not found"
MESSAGE_NOT_FOUND = "Message not found"


# Shapes ------------------------------------------------------------------------------


class AgentKitThreadCreate(Input):
    """POST /api/threads, as a JSON body or as query parameters."""

    agent_type: ShortText
    model: ShortText
    provider: ShortText
    title: ShortText | None = Field(
        default=None, description='default "New {agent_type} conversation"'
    )

    def to_create(self) -> ThreadCreate:
        return ThreadCreate(**self.model_dump())


class AgentKitThreadUpdate(Input):
    """PATCH /api/threads/{id}: a title, or nothing (the thread's updated_at still moves).

    The title column cannot be null: leave it out to keep it; an explicit null is refused
    (422), and the OpenAPI document shows the field without null, as RunUpdate does.
    """

    title: ShortText | SkipJsonSchema[None] = None

    @field_validator("title")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        # Runs only on a value the caller sent: the None default means "leave it".
        if value is None:
            raise ValueError("may be left out, but cannot be null")
        return value

    def to_update(self) -> ThreadUpdate:
        return ThreadUpdate.model_validate(self.model_dump(exclude_unset=True))


class AgentKitMessageCreate(Input):
    role: MessageRole
    content: SafeText | None = None
    artifact_data: JsonObject | None = Field(
        default=None, description="an object such as {type, content}"
    )
    metadata: JsonObject | None = Field(
        default=None, description="an object; none (absent or null) is stored and read as {}"
    )

    def to_create(self) -> MessageCreate:
        return MessageCreate(
            role=self.role,
            content=self.content,
            artifact_data=self.artifact_data,
            metadata=self.metadata or {},
        )


class AgentKitThread(BaseModel):
    id: uuid.UUID
    title: str
    agent_type: str
    model: str | None = Field(description="null only for threads made through /threads")
    provider: str | None = Field(description="null only for threads made through /threads")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ThreadRecord) -> AgentKitThread:
        return cls.model_validate(record, from_attributes=True)


class AgentKitThreadList(BaseModel):
    threads: list[AgentKitThread]


class AgentKitThreadRenamed(BaseModel):
    id: uuid.UUID
    title: str
    updated_at: datetime


class AgentKitMessage(BaseModel):
    id: uuid.UUID
    thread_id: uuid.UUID
    role: str
    content: str | None
    # Any JSON: messages written through /threads may hold a non-object.
    artifact_data: Any | None
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, record: MessageRecord) -> AgentKitMessage:
        return cls.model_validate(record, from_attributes=True)


class AgentKitMessageList(BaseModel):
    messages: list[AgentKitMessage]


class Deleted(BaseModel):
    message: str


class NotFound(BaseModel):
    detail: str = Field(examples=[THREAD_NOT_FOUND])


ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"model": NotFound, "description": "no API key (or X-Actor-ID) in those modes"},
    404: {"model": NotFound, "description": "no such id among the caller's"},
    422: {"model": Problem, "description": "invalid input"},
    503: {"model": Problem, "description": "database unavailable; retry after Retry-After"},
}


# Translation --------------------------------------------------------------------------


@contextmanager
def _not_found(detail: str) -> Iterator[None]:
    """The protocol's 404 for the store's NotFoundError and ForbiddenError alike."""
    try:
        yield
    except (NotFoundError, ForbiddenError) as exc:
        raise HTTPException(status_code=404, detail=detail) from exc


def _uuid(raw: str, detail: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise HTTPException(status_code=404, detail=detail) from exc


def _thread_fields(
    body: AgentKitThreadCreate | None, query: dict[str, str | None]
) -> AgentKitThreadCreate:
    """The body, or the same four fields as query parameters (AgentKit's tests send
    those); both at once would leave one of them unread, so that is refused."""
    given = {name: value for name, value in query.items() if value is not None}
    if body is not None:
        if given:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": "give the thread's fields either as a JSON body or as "
                        "query parameters, not both",
                        "type": "value_error",
                    }
                    for name in given
                ]
            )
        return body
    try:
        return AgentKitThreadCreate.model_validate(given)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


# AgentKit's own tests send the thread's fields as query parameters. OpenAPI documents the
# JSON body only (required there), since it cannot say "a body or these parameters".
QueryText = Annotated[str | None, Query(max_length=512, include_in_schema=False)]


# Routes -------------------------------------------------------------------------------


@router.post(
    "/threads",
    response_model=AgentKitThread,
    responses=ANSWERS,
    openapi_extra={"requestBody": {"required": True}},
)
async def create_thread(
    caller: CurrentCaller,
    body: Annotated[
        AgentKitThreadCreate | None,
        Body(),
        # Documented as the object alone (a null body is one without the fields).
        WithJsonSchema(AgentKitThreadCreate.model_json_schema()),
    ] = None,
    agent_type: QueryText = None,
    model: QueryText = None,
    provider: QueryText = None,
    title: QueryText = None,
) -> AgentKitThread:
    """A new thread of the caller's. 200, not 201: AgentKit's protocol.

    The same four fields are also taken as query parameters (`agent_type`, `model`,
    `provider`, `title`), as AgentKit's tests send them; a body and parameters together
    are refused.
    """
    query = {"agent_type": agent_type, "model": model, "provider": provider, "title": title}
    fields = _thread_fields(body, query)
    return AgentKitThread.of(
        await caller.threads.create_thread(fields.to_create(), actor=caller.actor)
    )


@router.get("/threads", response_model=AgentKitThreadList, responses=ANSWERS)
async def list_threads(
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AgentKitThreadList:
    """The caller's threads, most recently updated first."""
    page = await caller.threads.list_threads(caller.actor, limit=limit, offset=offset)
    return AgentKitThreadList(threads=[AgentKitThread.of(t) for t in page.items])


@router.get("/threads/{thread_id}", response_model=AgentKitThread, responses=ANSWERS)
async def get_thread(thread_id: str, caller: CurrentCaller) -> AgentKitThread:
    with _not_found(THREAD_NOT_FOUND):
        record = await caller.threads.get_thread(
            _uuid(thread_id, THREAD_NOT_FOUND), actor=caller.actor
        )
    return AgentKitThread.of(record)


@router.patch("/threads/{thread_id}", response_model=AgentKitThreadRenamed, responses=ANSWERS)
async def update_thread(
    thread_id: str,
    caller: CurrentCaller,
    body: Annotated[AgentKitThreadUpdate | None, Body()] = None,
) -> AgentKitThreadRenamed:
    changes = (body or AgentKitThreadUpdate()).to_update()
    with _not_found(THREAD_NOT_FOUND):
        record = await caller.threads.update_thread(
            _uuid(thread_id, THREAD_NOT_FOUND), changes, actor=caller.actor
        )
    return AgentKitThreadRenamed(id=record.id, title=record.title, updated_at=record.updated_at)


@router.delete("/threads/{thread_id}", response_model=Deleted, responses=ANSWERS)
async def delete_thread(thread_id: str, caller: CurrentCaller) -> Deleted:
    """The thread and its messages; its runs stay, no longer linked to a thread."""
    with _not_found(THREAD_NOT_FOUND):
        await caller.threads.delete_thread(_uuid(thread_id, THREAD_NOT_FOUND), actor=caller.actor)
    return Deleted(message="Thread deleted successfully")


@router.post("/threads/{thread_id}/messages", response_model=AgentKitMessage, responses=ANSWERS)
async def create_message(
    thread_id: str, body: AgentKitMessageCreate, caller: CurrentCaller
) -> AgentKitMessage:
    """Appended after the thread's last message; the thread's updated_at becomes its time."""
    with _not_found(THREAD_NOT_FOUND):
        record = await caller.threads.add_message(
            _uuid(thread_id, THREAD_NOT_FOUND), body.to_create(), actor=caller.actor
        )
    return AgentKitMessage.of(record)


@router.get("/threads/{thread_id}/messages", response_model=AgentKitMessageList, responses=ANSWERS)
async def list_messages(thread_id: str, caller: CurrentCaller) -> AgentKitMessageList:
    """All of them, oldest first, in the order they were appended."""
    with _not_found(THREAD_NOT_FOUND):
        records = await caller.threads.list_all_messages(
            _uuid(thread_id, THREAD_NOT_FOUND), actor=caller.actor
        )
    return AgentKitMessageList(messages=[AgentKitMessage.of(m) for m in records])


@router.delete("/messages/{message_id}", response_model=Deleted, responses=ANSWERS)
async def delete_message(message_id: str, caller: CurrentCaller) -> Deleted:
    with _not_found(MESSAGE_NOT_FOUND):
        await caller.threads.delete_message(
            _uuid(message_id, MESSAGE_NOT_FOUND), actor=caller.actor
        )
    return Deleted(message="Message deleted successfully")
