"""Where the database is and how to talk to it: one resolver, one engine per process.

The service, Alembic, the CLI and the tests all resolve the URL here, so they can never
disagree about which database they are using. `Database` is the one object the stores
talk through: the engine, its session factory, the settings and the retry policy.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chad_memory.embedded import embedded_database_url
from chad_memory.errors import DirectConnectionRequiredError
from chad_memory.loop_pools import LoopPool
from chad_memory.poolers import driver_options, forwards_startup_setting
from chad_memory.settings import Settings, get_settings
from chad_memory.vector_codec import register_vector_codec

logger = logging.getLogger(__name__)

SessionFactory = async_sessionmaker[AsyncSession]

_engine: AsyncEngine | None = None
_session_factory: async_sessionmaker[AsyncSession] | None = None
_resolved_url: str | None = None


def resolve_database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL when set, else the embedded server under CHAD_DATA_DIR (started here)."""
    global _resolved_url
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    if _resolved_url is None:
        _resolved_url = embedded_database_url(
            settings.chad_data_dir, verbose=settings.log_level.lower() == "debug"
        )
    return _resolved_url


def resolve_direct_database_url(settings: Settings | None = None) -> str:
    """Where work that needs a session of its own goes: migrations, index builds and
    calibration. DIRECT_DATABASE_URL when set; else the one URL, unless that URL goes
    through a transaction-mode pooler, which cannot carry such work."""
    settings = settings or get_settings()
    if settings.direct_database_url:
        return settings.direct_database_url
    if settings.db_pooler == "transaction":
        raise DirectConnectionRequiredError(
            "DB_POOLER=transaction: migrations and vector index builds need a session of "
            "their own; set DIRECT_DATABASE_URL to the server (or a session-mode pooler)"
        )
    return resolve_database_url(settings)


def create_engine(url: str, settings: Settings | None = None, **overrides: Any) -> AsyncEngine:
    """An engine configured from settings; most code wants the shared `get_engine()` instead."""
    settings = settings or get_settings()
    server_settings = {"application_name": settings.db_application_name}
    if settings.db_statement_timeout_ms and forwards_startup_setting(
        settings.db_pooler, "statement_timeout"
    ):
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_pre_ping": settings.db_pool_pre_ping,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "connect_args": {
            "server_settings": server_settings,
            **driver_options(settings.db_pooler),
        },
        # A pool per event loop: the engine works from any loop and thread.
        "poolclass": LoopPool,
    }
    options.update(overrides)
    engine = create_async_engine(url, **options)
    # The pool's liveness check without a round trip: asyncpg notices a closed socket by
    # itself (a terminated backend, a restarted server), and a connection that only looks
    # alive fails at BEGIN, before anything is written, which the stores retry.
    engine.dialect.do_ping = _driver_still_open  # type: ignore[method-assign]
    engine.dialect.do_close = _close_quietly  # type: ignore[method-assign]
    event.listen(engine.sync_engine, "connect", _register_vector_codec)
    return engine


def _close_quietly(dbapi_connection: Any) -> None:
    """Close a pooled connection; one whose socket is already gone (the server stopped) is
    dropped without the goodbye message, instead of logging a BrokenPipe traceback."""
    try:
        dbapi_connection.close()
    except (OSError, ConnectionError):
        dbapi_connection.terminate()


def _driver_still_open(dbapi_connection: Any) -> bool:
    driver = getattr(dbapi_connection, "driver_connection", None)
    return driver is not None and not driver.is_closed()


def _register_vector_codec(dbapi_connection: Any, connection_record: Any) -> None:
    """Binary `vector` on each new connection (see chad_memory.vector_codec for why)."""
    dbapi_connection.run_async(register_vector_codec)


def get_engine() -> AsyncEngine:
    """The process-wide engine, created on first use."""
    global _engine
    if _engine is None:
        _engine = create_engine(resolve_database_url())
    return _engine


def get_session_factory(engine: AsyncEngine | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit, so records can be built afterwards."""
    global _session_factory
    if engine is not None:
        return async_sessionmaker(engine, expire_on_commit=False)
    if _session_factory is None:
        _session_factory = async_sessionmaker(get_engine(), expire_on_commit=False)
    return _session_factory


@dataclass(frozen=True)
class RetryPolicy:
    """How often a retryable failure is tried again, and how long to wait in between."""

    attempts: int = 3
    backoff_seconds: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.db_retry_attempts, settings.db_retry_backoff_ms / 1000)

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so colliding writers do not collide again."""
        return random.uniform(0, self.backoff_seconds * 2 ** (attempt - 1))


@dataclass
class Database:
    """The stores' one way in: engine, session factory, settings and retry policy.

    Stores accept either this or a bare session factory (`PostgresStore(session_factory)`
    is the documented constructor); `Database.of` turns the latter into the former, so
    every store reads its settings and retry rule from here and nowhere else.
    """

    engine: AsyncEngine
    settings: Settings = field(default_factory=lambda: get_settings())
    sessions: SessionFactory | None = None
    retry_policy: RetryPolicy | None = None
    _reader: AsyncEngine | None = field(default=None, init=False, repr=False)
    _direct: AsyncEngine | None = field(default=None, init=False, repr=False)
    # Told (kind, rows) after each committed write; the service's metrics listen here, so
    # rows are counted wherever they come from (HTTP, OTLP, a library caller in-process).
    ingest_listeners: list[Callable[[str, int], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.sessions is None:
            self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        if self.retry_policy is None:
            self.retry_policy = RetryPolicy.from_settings(self.settings)

    def ingested(self, kind: str, rows: int) -> None:
        """`rows` rows of `kind` (runs, steps, llm_calls, ...) were just committed."""
        if rows > 0:
            for listener in self.ingest_listeners:
                listener(kind, rows)

    @property
    def reader(self) -> AsyncEngine:
        """The same pool in autocommit: a read is its statements, without BEGIN/COMMIT."""
        if self._reader is None:
            self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self._reader

    @property
    def maintenance_engine(self) -> AsyncEngine:
        """The engine for index builds and calibration, which need a session of their own:
        this one, unless DB_POOLER=transaction, then one on DIRECT_DATABASE_URL (a small
        pool of its own, disposed with `dispose`)."""
        if self.settings.db_pooler != "transaction":
            return self.engine
        if self._direct is None:
            direct = self.settings.model_copy(update={"db_pooler": "none"})
            self._direct = create_engine(
                resolve_direct_database_url(self.settings), direct, pool_size=2, max_overflow=0
            )
        return self._direct

    async def dispose(self) -> None:
        """Close the pools this object opened besides the engine it was given."""
        if self._direct is not None:
            await self._direct.dispose()
            self._direct = None

    @property
    def session_factory(self) -> SessionFactory:
        assert self.sessions is not None
        return self.sessions

    @property
    def retry(self) -> RetryPolicy:
        assert self.retry_policy is not None
        return self.retry_policy

    @classmethod
    def of(cls, source: Database | SessionFactory, settings: Settings | None = None) -> Database:
        """`source` itself, or a Database around a session factory bound to an engine."""
        if isinstance(source, Database):
            return source
        bind = source.kw.get("bind")
        engine = bind.engine if isinstance(bind, AsyncConnection) else bind
        if not isinstance(engine, AsyncEngine):
            raise TypeError("the session factory must be bound to an AsyncEngine or connection")
        return cls(engine, settings or get_settings(), source)

    @classmethod
    def connect(cls, settings: Settings | None = None, **overrides: Any) -> Database:
        """A Database with an engine of its own for `settings` (the caller disposes it)."""
        settings = settings or get_settings()
        return cls(create_engine(resolve_database_url(settings), settings, **overrides), settings)


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession] | None = None,
) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block finishes, rolled back if it raises."""
    async with (factory or get_session_factory())() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_db_session() -> AsyncIterator[AsyncSession]:
    """`session_scope` as a dependency-style async generator, on the process engine."""
    async with session_scope() as session:
        yield session


async def check_db_connection(engine: AsyncEngine | None = None, timeout: float = 5.0) -> bool:
    """True when a `SELECT 1` round-trip succeeds within `timeout` seconds."""
    engine = engine or get_engine()
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except (OSError, TimeoutError, DBAPIError, OperationalError) as exc:
        logger.warning("database check failed: %s", exc.__class__.__name__)
        return False


async def close_db_connections() -> None:
    """Dispose of the shared engine's pool (at shutdown, or before a fork)."""
    global _engine, _session_factory
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _session_factory = None
