"""Dependencies shared by the routers, with `Annotated` aliases to keep signatures short.

All are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread
hop per dependency per request for what is an attribute read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.database import session_scope
from chad_memory.stores import PgVectorStore, PostgresStore, PriceStore, ThreadStore
from chad_memory.stores.search import SearchStore


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return factory


SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]


async def get_db(factory: SessionFactoryDep) -> AsyncIterator[AsyncSession]:
    """A session for one request: committed if the handler returns, rolled back if it raises."""
    async with session_scope(factory) as session:
        yield session


async def get_postgres_store(request: Request) -> PostgresStore:
    store: PostgresStore = request.app.state.postgres_store
    return store


async def get_vector_store(request: Request) -> PgVectorStore:
    store: PgVectorStore = request.app.state.vector_store
    return store


async def get_read_postgres_store(request: Request) -> PostgresStore:
    """For dashboard reads: on the read replica when READ_DATABASE_URL is set."""
    store: PostgresStore = request.app.state.read_postgres_store
    return store


async def get_read_vector_store(request: Request) -> PgVectorStore:
    store: PgVectorStore = request.app.state.read_vector_store
    return store


async def get_thread_store(request: Request) -> ThreadStore:
    store: ThreadStore = request.app.state.thread_store
    return store


async def get_search_store(request: Request) -> SearchStore:
    store: SearchStore = request.app.state.search_store
    return store


def get_price_store(request: Request) -> PriceStore:
    store: PriceStore = request.app.state.price_store
    return store


DbSession = Annotated[AsyncSession, Depends(get_db)]
RunStoreDep = Annotated[PostgresStore, Depends(get_postgres_store)]
VectorStoreDep = Annotated[PgVectorStore, Depends(get_vector_store)]
ThreadStoreDep = Annotated[ThreadStore, Depends(get_thread_store)]
PriceStoreDep = Annotated[PriceStore, Depends(get_price_store)]
ReadRunStoreDep = Annotated[PostgresStore, Depends(get_read_postgres_store)]
ReadVectorStoreDep = Annotated[PgVectorStore, Depends(get_read_vector_store)]
SearchStoreDep = Annotated[SearchStore, Depends(get_search_store)]
