"""ThreadStore against a real, migrated PostgreSQL: CRUD, ordering, pagination, cascade."""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    ForbiddenError,
    InvalidInputError,
    MessageCreate,
    NotFoundError,
    PostgresStore,
    RunCreate,
    RunFilter,
    ThreadCreate,
    ThreadStore,
    ThreadUpdate,
)
from chad_memory.models import Message, Thread


@pytest.fixture
def threads(session_factory: async_sessionmaker[AsyncSession]) -> ThreadStore:
    return ThreadStore(session_factory)


def user(text: str) -> MessageCreate:
    return MessageCreate(role="user", content=text)


async def test_thread_crud(threads: ThreadStore) -> None:
    t = await threads.create_thread(
        ThreadCreate(agent_type="research", model="gpt-4o", provider="openai", metadata={"k": 1}),
        actor="alice",
    )
    assert t.actor == "alice"
    assert t.title == "New research conversation"
    assert (t.model, t.provider, t.metadata) == ("gpt-4o", "openai", {"k": 1})
    assert t.created_at == t.updated_at

    titled = await threads.create_thread(
        ThreadCreate(agent_type="chat", title="Trip plans"), actor="alice"
    )
    assert titled.title == "Trip plans"

    assert await threads.get_thread(t.id) == t
    assert await threads.get_thread(t.id, actor="alice") == t
    with pytest.raises(ForbiddenError):
        await threads.get_thread(t.id, actor="bob")
    with pytest.raises(NotFoundError):
        await threads.get_thread(uuid.uuid4())

    renamed = await threads.update_thread(t.id, ThreadUpdate(title="Renamed"), actor="alice")
    assert renamed.title == "Renamed"
    assert renamed.metadata == {"k": 1}, "fields not given stay as they were"
    assert renamed.updated_at > t.updated_at
    remeta = await threads.update_thread(t.id, ThreadUpdate(metadata={"k": 2}))
    assert (remeta.title, remeta.metadata) == ("Renamed", {"k": 2})
    with pytest.raises(ForbiddenError):
        await threads.update_thread(t.id, ThreadUpdate(title="x"), actor="bob")
    with pytest.raises(NotFoundError):
        await threads.update_thread(uuid.uuid4(), ThreadUpdate(title="x"))

    with pytest.raises(ForbiddenError):
        await threads.delete_thread(t.id, actor="bob")
    await threads.delete_thread(t.id, actor="alice")
    with pytest.raises(NotFoundError):
        await threads.get_thread(t.id)
    with pytest.raises(NotFoundError):
        await threads.delete_thread(t.id)
    assert await threads.count_threads("alice") == 1


def test_inputs_are_validated() -> None:
    with pytest.raises(ValidationError):
        ThreadCreate.model_validate({})  # agent_type is required
    with pytest.raises(ValidationError):
        ThreadCreate(agent_type="chat", title="a\x00b")
    with pytest.raises(ValidationError):
        ThreadCreate.model_validate({"agent_type": "chat", "actor": "mallory"})
    with pytest.raises(ValidationError):
        ThreadUpdate(title=None)
    with pytest.raises(ValidationError):
        ThreadUpdate(metadata={"x": math.nan})
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"role": "wizard", "content": "hi"})
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"content": "no role"})
    with pytest.raises(ValidationError):
        MessageCreate(role="user", content="\ud800")
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"role": "assistant", "tool_calls": [{"args": math.inf}]})
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"role": "assistant", "tool_calls": ["not an object"]})


async def test_actor_argument_is_validated(threads: ThreadStore) -> None:
    for bad in ("", "x" * 256, "a\x00b", "\udc00"):
        with pytest.raises(InvalidInputError):
            await threads.create_thread(ThreadCreate(agent_type="chat"), actor=bad)
        with pytest.raises(InvalidInputError):
            await threads.list_threads(bad)
        with pytest.raises(InvalidInputError):
            await threads.count_threads(bad)


async def test_messages_keep_append_order(threads: ThreadStore) -> None:
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    first = await threads.add_message(t.id, MessageCreate(role="system", content="be brief"))
    batch = await threads.add_messages(t.id, [user(f"m{i}") for i in range(40)])
    assert [m.content for m in batch] == [f"m{i}" for i in range(40)]
    tool = await threads.add_message(
        t.id,
        MessageCreate(
            role="assistant",
            tool_calls=[{"id": "c1", "name": "search", "arguments": {"q": "x"}}],
            artifact_data={"files": ["a.txt"]},
            metadata={"tokens": 12},
        ),
    )
    assert tool.content is None
    assert tool.tool_calls == [{"id": "c1", "name": "search", "arguments": {"q": "x"}}]
    assert tool.artifact_data == {"files": ["a.txt"]}
    assert tool.metadata == {"tokens": 12}

    page = await threads.list_messages(t.id, limit=100)
    assert [m.id for m in page.items] == [first.id, *(m.id for m in batch), tool.id]
    assert page.next_cursor is None
    stamps = [m.created_at for m in page.items]
    assert all(a < b for a, b in itertools.pairwise(stamps)), "strictly increasing"

    # The thread's updated_at follows its newest message.
    thread = await threads.get_thread(t.id)
    assert thread.updated_at == tool.created_at
    assert await threads.count_messages(t.id) == 42
    assert await threads.add_messages(t.id, []) == []


async def test_concurrent_appends_do_not_interleave_batches(threads: ThreadStore) -> None:
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    batches = [[user(f"{b}:{i}") for i in range(20)] for b in "abcd"]
    await asyncio.gather(*(threads.add_messages(t.id, batch) for batch in batches))
    contents = [m.content or "" for m in (await threads.list_messages(t.id, limit=200)).items]
    assert len(contents) == 80
    # Each batch is contiguous and in its own order, whichever batch went first.
    chunks = [contents[i : i + 20] for i in range(0, 80, 20)]
    assert sorted(chunks) == sorted([[m.content for m in batch] for batch in batches])


async def test_append_waits_for_the_thread_lock_and_lands_after(
    threads: ThreadStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """An append that raced another one is placed after it, never inside or before it."""
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    later = datetime.now(UTC) + timedelta(hours=1)
    async with session_factory() as other, other.begin():
        # Another writer holds the thread (as add_messages does) and writes a message whose
        # timestamp is ahead of ours; our append must wait and then go after it.
        await other.get(Thread, t.id, with_for_update=True)
        task = asyncio.create_task(threads.add_messages(t.id, [user("x"), user("y")]))
        await asyncio.sleep(0.3)
        assert not task.done(), "the append waits for the thread lock"
        other.add(Message(thread_id=t.id, role="user", content="first", created_at=later))
    added = await task
    assert all(m.created_at > later for m in added)
    contents = [m.content for m in (await threads.list_messages(t.id)).items]
    assert contents == ["first", "x", "y"]


async def test_message_pagination(threads: ThreadStore) -> None:
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    added = await threads.add_messages(t.id, [user(str(i)) for i in range(11)])
    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        page = await threads.list_messages(t.id, limit=4, cursor=cursor)
        seen.extend(m.id for m in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [m.id for m in added]
    assert pages == 3

    with pytest.raises(InvalidInputError):
        await threads.list_messages(t.id, cursor="garbage")
    with pytest.raises(InvalidInputError):
        await threads.list_messages(t.id, limit=0)
    with pytest.raises(ForbiddenError):
        await threads.list_messages(t.id, actor="bob")
    with pytest.raises(NotFoundError):
        await threads.list_messages(uuid.uuid4())


async def test_thread_list_is_most_recent_first_and_paginated(threads: ThreadStore) -> None:
    made = [
        await threads.create_thread(ThreadCreate(agent_type="chat", title=f"t{i}"), actor="alice")
        for i in range(5)
    ]
    await threads.create_thread(ThreadCreate(agent_type="chat"), actor="bob")
    # Activity moves the oldest thread to the front.
    await threads.add_message(made[0].id, user("hello again"))
    expected = [made[0].id, made[4].id, made[3].id, made[2].id, made[1].id]

    first = await threads.list_threads("alice", limit=2)
    assert [t.id for t in first.items] == expected[:2]
    assert first.next_cursor is not None
    rest = await threads.list_threads("alice", limit=10, cursor=first.next_cursor)
    assert [t.id for t in rest.items] == expected[2:]
    assert rest.next_cursor is None
    assert await threads.count_threads("alice") == 5
    assert [t.actor for t in (await threads.list_threads("bob")).items] == ["bob"]
    assert (await threads.list_threads("nobody")).items == []


async def test_delete_message(threads: ThreadStore) -> None:
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    a, b = await threads.add_messages(t.id, [user("a"), user("b")])
    with pytest.raises(ForbiddenError):
        await threads.delete_message(a.id, actor="bob")
    await threads.delete_message(a.id, actor="alice")
    assert [m.id for m in (await threads.list_messages(t.id)).items] == [b.id]
    with pytest.raises(NotFoundError):
        await threads.delete_message(a.id)


async def test_add_messages_checks_the_thread(threads: ThreadStore) -> None:
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    with pytest.raises(ForbiddenError):
        await threads.add_message(t.id, user("hi"), actor="bob")
    with pytest.raises(NotFoundError):
        await threads.add_message(uuid.uuid4(), user("hi"))
    assert await threads.count_messages(t.id) == 0


async def test_delete_thread_cascades_messages_and_unlinks_runs(
    threads: ThreadStore,
    store: PostgresStore,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    t = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    other = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="alice")
    await threads.add_messages(t.id, [user("a"), user("b")])
    kept = await threads.add_message(other.id, user("stays"))
    run = await store.save_run(RunCreate(actor="alice", name="linked", thread_id=t.id))
    assert [r.id for r in (await store.list_runs(RunFilter(thread_id=t.id))).items] == [run.id]

    await threads.delete_thread(t.id)

    async with session_factory() as session:
        left = list(await session.scalars(select(Message.id)))
        assert left == [kept.id]
        assert await session.scalar(select(func.count()).select_from(Message)) == 1
    after = await store.get_run(run.id)
    assert after.thread_id is None
    assert after.name == "linked"
