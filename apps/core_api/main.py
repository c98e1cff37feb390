"""The FastAPI service: `create_app()` builds it, `app` is what uvicorn serves.

`app` is built on first access (module `__getattr__`), so importing this module reads no
settings; `create_app(settings=...)` reaches every store through one `Database`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from apps.core_api.deps import Stores
from apps.core_api.errors import install_error_handlers
from apps.core_api.metrics import ServiceMetrics
from apps.core_api.middleware import (
    AccessLogMiddleware,
    BodyGuardMiddleware,
    OtlpStatusMiddleware,
)
from apps.core_api.routers import (
    agentkit,
    analytics,
    datasets,
    health,
    memory,
    operations,
    otlp,
    prices,
    runs,
    scores,
    search,
    threads,
)
from apps.core_api.ui import install_ui
from chad_memory.database import (
    Database,
    RetryPolicy,
    check_db_connection,
    create_engine,
    resolve_database_url,
)
from chad_memory.errors import ChadMemoryError
from chad_memory.replicas import ReplicaState
from chad_memory.retention import retention_sweeper
from chad_memory.settings import Settings, get_settings

if TYPE_CHECKING:
    from chad_memory.embedded_supervisor import EmbeddedSupervisor

logger = logging.getLogger("chad_memory.api")

# What a browser front end may use across origins (CORS_ORIGINS): every method the routes
# answer, and the request headers they read. X-Actor-ID is not among them: it is for an
# auth proxy, never a browser.
CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")


async def _start_otlp_grpc(app: FastAPI, settings: Settings, port: int) -> Any:
    """The OTLP/gRPC server beside the app (extra `[grpc]`: grpcio), on its event loop."""
    try:
        from apps.core_api.otlp_grpc import start_otlp_grpc
    except ImportError as exc:
        raise RuntimeError("OTLP over gRPC needs grpcio: pip install 'chad-memory[grpc]'") from exc
    return await start_otlp_grpc(app.state, settings, port)


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
        replica = _replica(settings)
        app.state.replica = ReplicaState(settings.read_replica_cooldown_seconds)
        stores = Stores.over(db, replica, app.state.replica)
        app.state.stores = stores
        embedder = stores.vectors.embedder  # a bad EMBEDDER setting fails here
        if embedder is not None:
            logger.info("memory text is embedded by %s", embedder.name)
        app.state.metrics.watch_pool(db.engine)
        db.ingest_listeners.append(app.state.metrics.count)
        supervisor = _embedded_supervisor(settings) if own_engine else None
        if not await check_db_connection(db.engine):
            # Start anyway: /health says 503 and the pool reconnects when the database returns.
            logger.warning("database unavailable at startup; serving degraded until it returns")
        else:
            with contextlib.suppress(ChadMemoryError):
                await stores.vectors.index_info()  # logs a stale vector index
        grpc_server = None
        if settings.otlp_grpc_port is not None:
            grpc_server = await _start_otlp_grpc(app, settings, settings.otlp_grpc_port)
        sweeper = None
        if settings.retention_days is not None:
            sweeper = asyncio.create_task(
                retention_sweeper(
                    app.state.engine,
                    days=settings.retention_days,
                    interval_s=settings.retention_interval_seconds,
                    embeddings=settings.retention_embeddings,
                ),
                name="retention sweeper",
            )
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5)
            await stores.vectors.close()  # a background recalibration or rebuild
            if supervisor is not None:
                # Before anything stops the server on purpose, so it is not revived.
                await asyncio.to_thread(supervisor.stop)
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if replica is not None:
                await replica.engine.dispose()
            db.ingest_listeners.remove(app.state.metrics.count)
            await stores.keys.aclose()
            await db.dispose()
            if own_engine:
                await db.engine.dispose()

    app = FastAPI(
        title="chad-memory",
        summary="Run history and vector memory for AI agents.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    install_error_handlers(app)
    # Added last = outermost: the access log sees every answer, 413/415 included.
    app.add_middleware(
        BodyGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        binary_paths=otlp.PATHS,
    )
    app.add_middleware(OtlpStatusMiddleware, paths=otlp.PATHS)
    if settings.cors_origins:
        # Outside the body guard, so a browser can read its 413/415 answers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
            expose_headers=["Retry-After", "X-Total-Exact"],
            # Browsers send no cookies or HTTP auth here; an API key is a header the page
            # sets itself, which needs no credentials mode.
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(AccessLogMiddleware, metrics=app.state.metrics)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(memory.router)
    app.include_router(threads.router)
    app.include_router(scores.router)
    app.include_router(datasets.router)
    app.include_router(otlp.router)
    app.include_router(agentkit.router)
    app.include_router(analytics.router)
    app.include_router(prices.router)
    app.include_router(operations.router)
    app.include_router(search.router)
    install_ui(app)
    return app


def _embedded_supervisor(settings: Settings) -> EmbeddedSupervisor | None:
    """On the embedded database (no DATABASE_URL), a watcher that restarts it if it dies."""
    if settings.database_url is not None:
        return None
    from chad_memory.embedded_supervisor import EmbeddedSupervisor

    supervisor = EmbeddedSupervisor(settings.chad_data_dir)
    supervisor.start()
    return supervisor


def _replica(settings: Settings) -> Database | None:
    """The database dashboard reads go to first: READ_DATABASE_URL's, when set."""
    if not settings.read_database_url:
        return None
    logger.info("dashboard reads go to the read replica (READ_DATABASE_URL)")
    # One attempt on the replica: when it fails, the primary answers at once.
    return Database(
        create_engine(settings.read_database_url, settings),
        settings,
        retry_policy=RetryPolicy(attempts=1),
    )


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """`apps.core_api.main:app`, built from the environment's settings on first use."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
