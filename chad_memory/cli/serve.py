"""`chad-memory serve`: the API under uvicorn, on the embedded database when there is no
DATABASE_URL.

Its own module because serving owns process concerns no other command has: workers,
signals, and stopping the embedded server on the way out.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal

from chad_memory.cli.console import _say
from chad_memory.cli.database import _migrate, _prepare_embedded
from chad_memory.settings import Settings, get_settings, is_loopback


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chad_memory.database import resolve_database_url
    from chad_memory.embedded import stop_embedded_servers

    settings = get_settings()
    if settings.auth_mode == "local" and not is_loopback(args.host):
        raise ValueError(
            f"AUTH_MODE=local lets every request in without a key, so it listens on "
            f"loopback only (127.0.0.1, ::1 or localhost), not {args.host!r}; "
            "use AUTH_MODE=api_key to serve other machines"
        )
    if settings.database_url is None:
        _prepare_embedded()
        # Workers are separate processes: they reach the embedded server (started once,
        # here) by its URL instead of each starting or attaching to it.
        os.environ["DATABASE_URL"] = resolve_database_url(settings)
    elif args.migrate:
        _migrate()
    if settings.cursor_secret is None:
        # One key for every worker, so a cursor from one is accepted by the others.
        os.environ["CURSOR_SECRET"] = secrets.token_urlsafe(32)
    workers = f" with {args.workers} workers" if args.workers > 1 else ""
    _say(f"serving on http://{args.host}:{args.port}{workers} ({_access(settings)})")
    if args.otlp_grpc_port is not None:
        # Each worker's app starts the gRPC server from its settings (apps.core_api.main).
        os.environ["OTLP_GRPC_PORT"] = str(args.otlp_grpc_port)
        os.environ["OTLP_GRPC_HOST"] = args.host
        _say(f"OTLP over gRPC on {args.host}:{args.otlp_grpc_port}")
        # The app in this process (one worker) reads the settings already cached: set the
        # port there too. Clearing the cache instead made it re-read DATABASE_URL (set
        # above for workers) and take the embedded server for an external one, so nothing
        # restarted a dead postmaster.
        settings.otlp_grpc_port = args.otlp_grpc_port
        settings.otlp_grpc_host = args.host
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the process;
    # with the default handler that kills us before any cleanup runs, orphaning the
    # embedded PostgreSQL. Turning it into SystemExit lets the finally block stop it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            "apps.core_api.main:app",
            host=args.host,
            port=args.port,
            log_level=settings.log_level,
            proxy_headers=False,
            workers=args.workers,
            # The app logs every request itself, structured (apps/core_api/middleware.py).
            access_log=False,
        )
    finally:
        stop_embedded_servers()
    return 0


def _access(settings: Settings) -> str:
    """Who may call, for the start-up line: a local-mode server says so before anything."""
    if settings.auth_mode == "local":
        who = f"AUTH_MODE=local: no key needed, every request acts as {settings.local_actor!r}"
        who += ", this machine only"
    elif settings.auth_mode == "trusted_header":
        who = "AUTH_MODE=trusted_header: the actor is X-Actor-ID from your auth proxy"
    else:
        who = "AUTH_MODE=api_key: Authorization: Bearer <key>"
    origins = ", ".join(settings.cors_origins) or "none"
    return f"{who}; CORS origins: {origins}"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
