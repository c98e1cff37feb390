"""The `chad-memory` command: serve, migrate, and database chores."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from chad_memory.errors import ChadMemoryError
from chad_memory.settings import Settings, get_settings, is_loopback
from chad_memory.stores.keys import ApiKeyStore

logger = logging.getLogger("chad_memory.cli")
T = TypeVar("T")


def _say(message: str) -> None:
    """Progress for people at a terminal; stderr so stdout stays parseable."""
    print(f"chad-memory: {message}", file=sys.stderr, flush=True)


def _migrate(revision: str = "head") -> None:
    from chad_memory.database import resolve_database_url
    from chad_memory.migrations import upgrade

    url = resolve_database_url()
    _say(f"migrating database to {revision} ...")
    upgrade(url, revision)
    _say("migrations done")


def _prepare_embedded() -> None:
    """On the embedded database we own the schema too: start it and migrate to head."""
    from chad_memory.database import resolve_database_url

    settings = get_settings()
    if settings.database_url is None:
        _say(f"no DATABASE_URL: using the embedded PostgreSQL in {settings.chad_data_dir}")
        resolve_database_url()
        _migrate()


def _run_with_store(work: Callable[[ApiKeyStore], Awaitable[T]]) -> T:
    from chad_memory.database import close_db_connections, get_session_factory

    async def runner() -> T:
        try:
            return await work(ApiKeyStore(get_session_factory()))
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

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
    elif args.migrate:
        _migrate()
    _say(f"serving on http://{args.host}:{args.port} ({_access(settings)})")
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


def cmd_migrate(args: argparse.Namespace) -> int:
    _migrate(args.revision)
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from chad_memory.database import resolve_database_url

    print(resolve_database_url())
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    created = _run_with_store(lambda keys: keys.create_key(args.actor, args.name))
    _say(f"created key {created.key.id} for actor {created.key.actor!r}; it is shown only once:")
    print(created.secret, flush=True)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    records = _run_with_store(lambda keys: keys.list_keys(args.actor))
    print("id\tprefix\tname\tcreated_at\tlast_used_at\trevoked_at")
    for k in records:
        print(
            f"{k.id}\t{k.prefix}...\t{k.name or ''}\t{k.created_at.isoformat()}\t"
            f"{k.last_used_at.isoformat() if k.last_used_at else ''}\t"
            f"{k.revoked_at.isoformat() if k.revoked_at else ''}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    record = _run_with_store(lambda keys: keys.revoke_key(args.id))
    _say(f"revoked key {record.id} of actor {record.actor!r}")
    return 0


def cmd_memory_reindex(args: argparse.Namespace) -> int:
    """Rebuild the vector index, printing the build's phase and tuple counts as it goes."""
    from chad_memory.database import close_db_connections, get_session_factory
    from chad_memory.stores.vectors import PgVectorStore
    from chad_memory.vector_index import ReindexProgress

    def show(p: ReindexProgress) -> None:
        # HNSW builds report no total, only the rows loaded so far.
        count = (
            f"{p.tuples_done}/{p.tuples_total} rows ({100 * p.tuples_done / p.tuples_total:.0f}%)"
            if p.tuples_total
            else f"{p.tuples_done} rows"
        )
        _say(f"[{p.elapsed_s:6.1f}s] {p.phase}: {count}")

    async def runner() -> int:
        try:
            store = PgVectorStore(get_session_factory())
            before = await store.index_info(refresh=True)
            _say(
                f"rebuilding the vector index ({args.method}) on {before.rows} rows; "
                f"now: {before.name} ({before.method}, trained on {before.trained_rows} rows"
                f"{', stale' if before.stale else ''}); reads and writes continue meanwhile"
            )
            after = await store.reindex(method=args.method, lists=args.lists, progress=show)
            shape = f"lists={after.lists}" if after.method == "ivfflat" else f"m={after.m}"
            _say(f"done: {after.name} ({after.method}, {shape}, trained on {after.trained_rows})")
            return 0
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="chad-memory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (embedded database when no DATABASE_URL)")
    serve.add_argument("--host", default=os.environ.get("HOST", settings.host))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", settings.port)))
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="with DATABASE_URL, run migrations first (always done on the embedded database)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="run Alembic migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, as the last line")
    create.add_argument("--actor", required=True)
    create.add_argument("--name", default=None, help="a label to tell keys apart")
    create.set_defaults(func=cmd_keys_create)
    list_ = keys_sub.add_parser("list", help="list an actor's keys (never the secrets)")
    list_.add_argument("--actor", required=True)
    list_.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", type=uuid.UUID)
    revoke.set_defaults(func=cmd_keys_revoke)

    memory = sub.add_parser("memory", help="vector memory chores")
    memory_sub = memory.add_subparsers(dest="memory_command", required=True)
    reindex = memory_sub.add_parser(
        "reindex",
        help="rebuild the vector index on the data present (CONCURRENTLY), showing progress",
    )
    reindex.add_argument("--method", choices=["ivfflat", "hnsw"], default="ivfflat")
    reindex.add_argument(
        "--lists", type=int, default=None, help="IVFFLAT lists (default: about sqrt(rows))"
    )
    reindex.set_defaults(func=cmd_memory_reindex)

    db = sub.add_parser("db", help="database chores")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_url = db_sub.add_parser("url", help="print the database URL in use")
    db_url.set_defaults(func=cmd_db_url)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ChadMemoryError, ValueError, RuntimeError, OSError) as exc:
        _say(f"error: {exc}")
        return 1
    except DBAPIError as exc:
        _say(f"database error: {exc.orig}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
