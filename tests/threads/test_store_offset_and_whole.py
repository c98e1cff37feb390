"""ThreadStore for clients that page threads by position and read a conversation whole
(AgentKit's /api): the same ordering, ownership and bounds as the cursor methods."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    ForbiddenError,
    InvalidInputError,
    MessageCreate,
    NotFoundError,
    PostgresStore,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.stores.limits import MAX_OFFSET


@pytest.fixture
def threads(session_factory: async_sessionmaker[AsyncSession]) -> ThreadStore:
    return ThreadStore(session_factory)


async def test_offset_pages_follow_the_cursor_order(threads: ThreadStore) -> None:
    made = [
        (await threads.create_thread(ThreadCreate(agent_type="chat", title=f"t{i}"), actor="a")).id
        for i in range(5)
    ]
    await threads.create_thread(ThreadCreate(agent_type="chat"), actor="someone-else")
    whole = [t.id for t in (await threads.list_threads("a", limit=10)).items]
    assert whole == made[::-1]
    by_offset = []
    for offset in range(0, 6, 2):
        page = await threads.list_threads("a", limit=2, offset=offset)
        by_offset += [t.id for t in page.items]
        assert (page.next_cursor is None) == (offset + 2 >= 5)
    assert by_offset == whole
    assert (await threads.list_threads("a", offset=5)).items == []
    assert (await threads.list_threads("a", offset=MAX_OFFSET)).items == []


@pytest.mark.parametrize("offset", [-1, MAX_OFFSET + 1, 2**63])
async def test_offset_out_of_bounds_is_refused(
    threads: ThreadStore, store: PostgresStore, offset: int
) -> None:
    with pytest.raises(InvalidInputError, match="offset must be between 0 and 1,000,000"):
        await threads.list_threads("a", offset=offset)
    with pytest.raises(InvalidInputError, match="offset must be between"):
        await store.list_runs(offset=offset)


async def test_list_all_messages_reads_every_page_in_order(threads: ThreadStore) -> None:
    thread = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="a")
    assert await threads.list_all_messages(thread.id, actor="a") == []
    sent = [MessageCreate(role="user", content=str(i)) for i in range(2500)]
    await threads.add_messages(thread.id, sent, actor="a")
    got = await threads.list_all_messages(thread.id, actor="a")
    assert [m.content for m in got] == [str(i) for i in range(2500)]
    assert len({m.id for m in got}) == 2500


async def test_list_all_messages_checks_the_owner(threads: ThreadStore) -> None:
    thread = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="a")
    with pytest.raises(ForbiddenError):
        await threads.list_all_messages(thread.id, actor="b")
    with pytest.raises(NotFoundError):
        await threads.list_all_messages(uuid.uuid4(), actor="a")
