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

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chad_memory.models import Message, Thread
from chad_memory.schemas import (
    MessageCreate,
    MessageRecord,
    Page,
    ThreadCreate,
    ThreadRecord,
    ThreadUpdate,
)
from chad_memory.stores.base import Store, check_owner_of
from chad_memory.stores.limits import MAX_PAGE_SIZE, check_batch, row_values
from chad_memory.stores.paging import Keyset, keyset_page, record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor, check_metadata_filter

# The step between the created_at of consecutive messages of one append: PostgreSQL's
# timestamp resolution, so the offsets stay invisible at any human scale.
TICK = timedelta(microseconds=1)
# Threads most recently active first; a thread that becomes active while someone pages
# moves to the front and is not shown twice. Messages oldest first, in append order.
THREADS = Keyset("threads", (Thread.updated_at, Thread.id), descending=True)
MESSAGES = Keyset("messages", (Message.created_at, Message.id), descending=False)
_THREAD = record_select(Thread, ThreadRecord)


async def _thread(
    session: AsyncSession, thread_id: uuid.UUID, actor: str | None, *, lock: bool = False
) -> Thread:
    """The thread row: NotFoundError if unknown, ForbiddenError if `actor` does not own it."""
    row = await session.get(Thread, thread_id, with_for_update=lock)
    check_owner_of("thread", thread_id, None if row is None else row.actor, actor)
    assert row is not None
    return row


async def _thread_record(
    conn: AsyncConnection, thread_id: uuid.UUID, actor: str | None
) -> ThreadRecord:
    """`_thread` for a read: the record, without a session or a transaction."""
    row = (await conn.execute(_THREAD.where(Thread.id == thread_id))).mappings().one_or_none()
    check_owner_of("thread", thread_id, None if row is None else row["actor"], actor)
    return ThreadRecord.model_validate(row)


def _thread_conditions(actor: str, metadata: dict[str, Any] | None) -> list[ColumnElement[bool]]:
    conds = [Thread.actor == check_actor(actor)]
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


class ThreadStore(Store):
    """Threads and messages. Every method is one transaction.

    Methods that take `actor` check ownership inside that transaction (ForbiddenError for
    another actor's thread); without it they act as a trusted caller.
    """

    # Threads --------------------------------------------------------------------------

    @retried
    async def create_thread(self, thread: ThreadCreate, *, actor: str) -> ThreadRecord:
        values = row_values(thread)
        values["actor"] = check_actor(actor)
        if values["title"] is None:
            values["title"] = f"New {thread.agent_type} conversation"
        async with transaction(self._db, "create_thread") as session:
            row = await session.scalar(pg_insert(Thread).values(**values).returning(Thread))
            return ThreadRecord.model_validate(row)

    @retried
    async def get_thread(self, thread_id: uuid.UUID, *, actor: str | None = None) -> ThreadRecord:
        async with read(self._db, "get_thread") as conn:
            return await _thread_record(conn, thread_id, actor)

    @retried
    async def list_threads(
        self,
        actor: str,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Page[ThreadRecord]:
        """An actor's threads, most recently active first (updated_at desc); with
        `metadata`, only threads whose metadata contains that object.

        `offset` skips that many threads (after the cursor, if both are given), for
        clients that page by position; a thread that becomes active meanwhile shifts
        those pages, which the cursor does not.
        """
        stmt = record_select(Thread, ThreadRecord).where(*_thread_conditions(actor, metadata))
        async with read(self._db, "list_threads") as conn:
            return await keyset_page(
                conn,
                stmt,
                THREADS,
                ThreadRecord,
                self._cursors,
                limit=limit,
                cursor=cursor,
                offset=offset,
            )

    @retried
    async def count_threads(self, actor: str, *, metadata: dict[str, Any] | None = None) -> int:
        conds = _thread_conditions(actor, metadata)
        stmt = select(func.count()).select_from(Thread).where(*conds)
        async with read(self._db, "count_threads") as conn:
            return int(await conn.scalar(stmt) or 0)

    @retried
    async def update_thread(
        self, thread_id: uuid.UUID, changes: ThreadUpdate, *, actor: str | None = None
    ) -> ThreadRecord:
        """Set the fields given in `changes`; updated_at moves to now either way."""
        data = changes.model_dump(exclude_unset=True)
        async with transaction(self._db, "update_thread") as session:
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
        async with transaction(self._db, "delete_thread") as session:
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
        async with transaction(self._db, "add_messages") as session:
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
        self._db.ingested("messages", len(records))
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
        stmt = record_select(Message, MessageRecord).where(
            *_message_conditions(thread_id, metadata)
        )
        async with read(self._db, "list_messages") as conn:
            await _thread_record(conn, thread_id, actor)
            return await keyset_page(
                conn, stmt, MESSAGES, MessageRecord, self._cursors, limit=limit, cursor=cursor
            )

    async def list_all_messages(
        self, thread_id: uuid.UUID, *, actor: str | None = None
    ) -> list[MessageRecord]:
        """Every message of a thread, oldest first, read page by page with the cursor.

        For clients that take a conversation whole. Each page is its own transaction;
        the keyset cursor keeps the pages from overlapping or skipping a message while
        others append.
        """
        messages: list[MessageRecord] = []
        cursor: str | None = None
        while True:
            page = await self.list_messages(
                thread_id, limit=MAX_PAGE_SIZE, cursor=cursor, actor=actor
            )
            messages.extend(page.items)
            if page.next_cursor is None:
                return messages
            cursor = page.next_cursor

    @retried
    async def count_messages(
        self, thread_id: uuid.UUID, *, metadata: dict[str, Any] | None = None
    ) -> int:
        conds = _message_conditions(thread_id, metadata)
        stmt = select(func.count()).select_from(Message).where(*conds)
        async with read(self._db, "count_messages") as conn:
            return int(await conn.scalar(stmt) or 0)

    @retried
    async def delete_message(self, message_id: uuid.UUID, *, actor: str | None = None) -> None:
        """Delete one message; ForbiddenError if `actor` does not own its thread."""
        async with transaction(self._db, "delete_message") as session:
            owner = await session.scalar(
                select(Thread.actor)
                .join(Message, Message.thread_id == Thread.id)
                .where(Message.id == message_id)
            )
            check_owner_of("message", message_id, owner, actor)
            await session.execute(delete(Message).where(Message.id == message_id))
