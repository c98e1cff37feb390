from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import ThreadStore


@pytest.fixture
def thread_store(session_factory: async_sessionmaker[AsyncSession]) -> ThreadStore:
    return ThreadStore(session_factory)
