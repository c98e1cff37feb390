"""`session_scope` (behind `get_db_session`): commit or roll back."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.database import session_scope
from chad_memory.models import Run


async def _count(factory: async_sessionmaker[AsyncSession]) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Run)) or 0)


async def test_commits_on_success_and_rolls_back_on_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_scope(session_factory) as session:
        session.add(Run(id=uuid.uuid4(), actor="alice"))
    assert await _count(session_factory) == 1

    async def fail_after_flush() -> None:
        async with session_scope(session_factory) as session:
            session.add(Run(id=uuid.uuid4(), actor="alice"))
            await session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_after_flush()
    assert await _count(session_factory) == 1
