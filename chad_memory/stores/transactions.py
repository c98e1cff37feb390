"""One unit of work per store call, with driver errors translated on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.errors import DatabaseUnavailableError, translate_db_error

SessionFactory = async_sessionmaker[AsyncSession]


@asynccontextmanager
async def transaction(factory: SessionFactory, what: str) -> AsyncIterator[AsyncSession]:
    """A session inside `BEGIN ... COMMIT`; the commit has happened when this block exits.

    Integrity errors become ConflictError / NotFoundError / InvalidInputError, lost
    connections become DatabaseUnavailableError; anything else propagates unchanged.
    """
    try:
        async with factory() as session, session.begin():
            yield session
    except DBAPIError as exc:
        translated = translate_db_error(exc, what)
        if translated is not None:
            raise translated from exc
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            raise DatabaseUnavailableError(f"{what}: database unavailable") from exc
        raise
    except (OSError, ConnectionError) as exc:
        raise DatabaseUnavailableError(f"{what}: database unavailable") from exc
    except PoolTimeoutError as exc:
        # Every pooled connection is busy for longer than DB_POOL_TIMEOUT: overloaded.
        raise DatabaseUnavailableError(f"{what}: database unavailable (pool exhausted)") from exc
