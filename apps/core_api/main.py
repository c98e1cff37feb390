"""The FastAPI service: `create_app()` builds it, `app` is what uvicorn serves.

`app` is built on first access (module `__getattr__`), so importing this module reads no
settings; `create_app(settings=...)` reaches every store through one `Database`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from apps.core_api.errors import install_error_handlers
from apps.core_api.middleware import AccessLogMiddleware, BodyGuardMiddleware
from apps.core_api.routers import health, memory, runs, threads
from apps.core_api.ui import install_ui
from chad_memory.database import Database, check_db_connection, create_engine, resolve_database_url
from chad_memory.errors import ChadMemoryError
from chad_memory.settings import Settings, get_settings
from chad_memory.stores import PgVectorStore, PostgresStore, ThreadStore
from chad_memory.stores.keys import ApiKeyStore

logger = logging.getLogger("chad_memory.api")


def create_app(
    *,
    engine: AsyncEngine | None = None,
    settings: Settings | None = None,
    database: Database | None = None,
) -> FastAPI:
    """Build the app. Pass `engine` (or a whole `database`) to use one you own (tests);
    else the app makes an engine from `settings` for its lifetime."""
    settings = settings or (database.settings if database is not None else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database
        own_engine = db is None and engine is None
        if db is None:
            eng = engine or create_engine(resolve_database_url(settings), settings)
            db = Database(eng, settings)
        app.state.database = db
        app.state.engine = db.engine
        app.state.session_factory = db.session_factory
        app.state.postgres_store = PostgresStore(db)
        app.state.vector_store = PgVectorStore(db)
        app.state.key_store = ApiKeyStore(db)
        app.state.thread_store = ThreadStore(db)
        if not await check_db_connection(db.engine):
            # Start anyway: /health says 503 and the pool reconnects when the database returns.
            logger.warning("database unavailable at startup; serving degraded until it returns")
        else:
            with contextlib.suppress(ChadMemoryError):
                await app.state.vector_store.index_info()  # logs a stale vector index
        try:
            yield
        finally:
            await app.state.key_store.aclose()
            if own_engine:
                await db.engine.dispose()

    app = FastAPI(
        title="chad-memory",
        summary="Run history and vector memory for AI agents.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Added last = outermost: the access log sees every answer, 413/415 included.
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(memory.router)
    app.include_router(threads.router)
    install_ui(app)
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """`apps.core_api.main:app`, built from the environment's settings on first use."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
