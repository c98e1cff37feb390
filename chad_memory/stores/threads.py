"""Conversation history: threads and their messages.

Message order is the order of appends. uuid4 ids are random and rows of one INSERT share
the transaction's now(), so neither can order a batch on its own; instead each append
gives its messages created_at values that strictly increase, starting just after the
thread's newest message. The thread row is locked while appending, so concurrent appends
to one thread take turns and the rule holds for them too. (created_at, id) then orders a
thread exactly as written, and serves as the keyset cursor.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from chad_memory.errors import ForbiddenError, InvalidInputError, NotFoundError
from chad_memory.models import Message, Thread
from chad_memory.pagination import decode_cursor, encode_cursor
from chad_memory.schemas import (
    MessageCreate,
    MessageRecord,
    Page,
    ThreadCreate,
    ThreadRecord,
    ThreadUpdate,
)
from chad_memory.stores.limits import check_batch, check_page, row_values
from chad_memory.stores.transactions import SessionFactory, retried, transaction
from chad_memory.validation import check_metadata_filter, check_text

# The step between the created_at of consecutive messages of one append: PostgreSQL's
# timestamp resolution, so the offsets stay invisible at any human scale.
TICK = timedelta(microseconds=1)


def _check_actor(actor: str) -> str:
    """The same rule as the `Actor` field of the input models, for the `actor=` argument."""
    if not 1 <= len(actor) <= 255:
        raise InvalidInputError("actor must be 1 to 255 characters long")
    return check_text(actor, "actor")


async def _thread(
    session: AsyncSession, thread_id: uuid.UUID, actor: str | None, *, lock: bool = False
) -> Thread:
    """The thread row: NotFoundError if unknown, ForbiddenError if `actor` does not own it."""
    row = await session.get(Thread, thread_id, with_for_update=lock)
    if row is None:
        raise NotFoundError(f"thread {thread_id} not found")
    if actor is not None and row.actor != actor:
        raise ForbiddenError(f"thread {thread_id} belongs to another actor")
    return row


def _thread_conditions(actor: str, metadata: dict[str, Any] | None) -> list[ColumnElement[bool]]:
    conds = [Thread.actor == _check_actor(actor)]
    if metadata is not None:
        # jsonb @> served by ix_threads_metadata (GIN, jsonb_path_ops).
        conds.append(Thread.metadata_.contains(check_metadata_filter(metadata)))
    return conds


def _message_conditions(
    thread_id: uuid.UUID, metadata: dict[str, Any] | None
) -> list[ColumnElement[bool]]:
    conds = [Message.thread_id == thread_id]
    if metadata is not None:
        conds.append(Message.metadata_.contains(check_metadata_filter(metadata)))
    return conds


class ThreadStore:
    """Threads and messages. Every method is one transaction.

    Methods that take `actor` check ownership inside that transaction (ForbiddenError for
    another actor's thread); without it they act as a trusted caller.
    """

    def __init__(self, session_factory: SessionFactory) -> None:
        self._sessions = session_factory

    # Threads --------------------------------------------------------------------------

    @retried
    async def create_thread(self, thread: ThreadCreate, *, actor: str) -> ThreadRecord:
        values = row_values(thread)
        values["actor"] = _check_actor(actor)
        if values["title"] is None:
            values["title"] = f"New {thread.agent_type} conversation"
        async with transaction(self._sessions, "create_thread") as session:
            row = await session.scalar(pg_insert(Thread).values(**values).returning(Thread))
            return ThreadRecord.model_validate(row)

    @retried
    async def get_thread(self, thread_id: uuid.UUID, *, actor: str | None = None) -> ThreadRecord:
        async with transaction(self._sessions, "get_thread") as session:
            return ThreadRecord.model_validate(await _thread(session, thread_id, actor))

    @retried
    async def list_threads(
        self,
        actor: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Page[ThreadRecord]:
        """An actor's threads, most recently active first (updated_at desc); with
        `metadata`, only threads whose metadata contains that object.

        The cursor names the last thread seen by its updated_at; a thread that becomes
        active while someone pages moves to the front and is not shown twice.
        """
        check_page(limit, 0)
        stmt = select(Thread).where(*_thread_conditions(actor, metadata))
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            stmt = stmt.where(tuple_(Thread.updated_at, Thread.id) < tuple_(at, last_id))
        stmt = stmt.order_by(Thread.updated_at.desc(), Thread.id.desc()).limit(limit + 1)
        async with transaction(self._sessions, "list_threads") as session:
            rows = list(await session.scalars(stmt))
        items = [ThreadRecord.model_validate(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(items[-1].updated_at, items[-1].id)
        return Page[ThreadRecord](items=items, next_cursor=next_cursor)

    @retried
    async def count_threads(self, actor: str, *, metadata: dict[str, Any] | None = None) -> int:
        conds = _thread_conditions(actor, metadata)
        stmt = select(func.count()).select_from(Thread).where(*conds)
        async with transaction(self._sessions, "count_threads") as session:
            return int(await session.scalar(stmt) or 0)

    @retried
    async def update_thread(
        self, thread_id: uuid.UUID, changes: ThreadUpdate, *, actor: str | None = None
    ) -> ThreadRecord:
        """Set the fields given in `changes`; updated_at moves to now either way."""
        data = changes.model_dump(exclude_unset=True)
        async with transaction(self._sessions, "update_thread") as session:
            row = await _thread(session, thread_id, actor, lock=True)
            if "title" in data:
                row.title = data["title"]
            if "metadata" in data:
                row.metadata_ = data["metadata"]
            row.updated_at = func.now()
            await session.flush()
            await session.refresh(row)
            return ThreadRecord.model_validate(row)

    @retried
    async def delete_thread(self, thread_id: uuid.UUID, *, actor: str | None = None) -> None:
        """Delete a thread. Its messages go with it (CASCADE); its runs stay, with
        thread_id set to null (SET NULL), because run history outlives a conversation."""
        async with transaction(self._sessions, "delete_thread") as session:
            await _thread(session, thread_id, actor, lock=True)
            await session.execute(delete(Thread).where(Thread.id == thread_id))

    # Messages -------------------------------------------------------------------------

    @retried
    async def add_message(
        self, thread_id: uuid.UUID, message: MessageCreate, *, actor: str | None = None
    ) -> MessageRecord:
        return (await self.add_messages(thread_id, [message], actor=actor))[0]

    @retried
    async def add_messages(
        self,
        thread_id: uuid.UUID,
        messages: Sequence[MessageCreate],
        *,
        actor: str | None = None,
    ) -> list[MessageRecord]:
        """Append messages in the order given; all land or none do.

        They get created_at values strictly after the thread's newest message and
        strictly increasing among themselves (module docstring), and the thread's
        updated_at becomes the last one's.
        """
        if not messages:
            return []
        check_batch(messages, "messages")
        async with transaction(self._sessions, "add_messages") as session:
            thread = await _thread(session, thread_id, actor, lock=True)
            newest = (
                select(func.max(Message.created_at))
                .where(Message.thread_id == thread_id)
                .scalar_subquery()
            )
            now, last = (await session.execute(select(func.now(), newest))).one()
            start = now if last is None or last < now else last + TICK
            rows = [
                {**row_values(m), "thread_id": thread_id, "created_at": start + i * TICK}
                for i, m in enumerate(messages)
            ]
            result = await session.scalars(
                pg_insert(Message).returning(Message, sort_by_parameter_order=True), rows
            )
            records = [MessageRecord.model_validate(r) for r in result]
            thread.updated_at = records[-1].created_at
            return records

    @retried
    async def list_messages(
        self,
        thread_id: uuid.UUID,
        *,
        limit: int = 50,
        cursor: str | None = None,
        actor: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Page[MessageRecord]:
        """A thread's messages, oldest first, in the order they were appended; with
        `metadata`, only messages whose metadata contains that object."""
        check_page(limit, 0)
        stmt = select(Message).where(*_message_conditions(thread_id, metadata))
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            stmt = stmt.where(tuple_(Message.created_at, Message.id) > tuple_(at, last_id))
        stmt = stmt.order_by(Message.created_at, Message.id).limit(limit + 1)
        async with transaction(self._sessions, "list_messages") as session:
            await _thread(session, thread_id, actor)
            rows = list(await session.scalars(stmt))
        items = [MessageRecord.model_validate(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
        return Page[MessageRecord](items=items, next_cursor=next_cursor)

    @retried
    async def count_messages(
        self, thread_id: uuid.UUID, *, metadata: dict[str, Any] | None = None
    ) -> int:
        conds = _message_conditions(thread_id, metadata)
        stmt = select(func.count()).select_from(Message).where(*conds)
        async with transaction(self._sessions, "count_messages") as session:
            return int(await session.scalar(stmt) or 0)

    @retried
    async def delete_message(self, message_id: uuid.UUID, *, actor: str | None = None) -> None:
        """Delete one message; ForbiddenError if `actor` does not own its thread."""
        async with transaction(self._sessions, "delete_message") as session:
            owner = await session.scalar(
                select(Thread.actor)
                .join(Message, Message.thread_id == Thread.id)
                .where(Message.id == message_id)
            )
            if owner is None:
                raise NotFoundError(f"message {message_id} not found")
            if actor is not None and owner != actor:
                raise ForbiddenError(f"message {message_id} belongs to another actor's thread")
            await session.execute(delete(Message).where(Message.id == message_id))
