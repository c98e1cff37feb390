"""The FastAPI service: `create_app()` builds it, `app` is what uvicorn serves."""

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
from chad_memory.database import (
    check_db_connection,
    close_db_connections,
    get_engine,
    get_session_factory,
)
from chad_memory.errors import ChadMemoryError
from chad_memory.settings import Settings, get_settings
from chad_memory.stores import PgVectorStore, PostgresStore, ThreadStore
from chad_memory.stores.keys import ApiKeyStore

logger = logging.getLogger("chad_memory.api")


def create_app(*, engine: AsyncEngine | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the app. Pass `engine` to use one you own (tests); else the process engine."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        app.state.engine = engine or get_engine()
        app.state.session_factory = get_session_factory(app.state.engine)
        app.state.postgres_store = PostgresStore(app.state.session_factory)
        app.state.vector_store = PgVectorStore(app.state.session_factory)
        app.state.key_store = ApiKeyStore(app.state.session_factory)
        app.state.thread_store = ThreadStore(app.state.session_factory)
        if not await check_db_connection(app.state.engine):
            # Start anyway: /health says 503 and the pool reconnects when the database returns.
            logger.warning("database unavailable at startup; serving degraded until it returns")
        else:
            with contextlib.suppress(ChadMemoryError):
                await app.state.vector_store.index_info()  # logs a stale vector index
        try:
            yield
        finally:
            if own_engine:
                await close_db_connections()

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


app = create_app()
