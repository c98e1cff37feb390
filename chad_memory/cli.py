"""The `chad-memory` command: serve, migrate, and database chores."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import DBAPIError

from chad_memory.errors import ChadMemoryError
from chad_memory.settings import Settings, get_settings, is_loopback
from chad_memory.stores.keys import ApiKeyStore
from chad_memory.vector_index import HNSW_EF_CONSTRUCTION, HNSW_M, VectorIndexInfo

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

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
    _say(
        "running services may accept it for up to "
        f"{get_settings().api_key_cache_seconds:g} s more (API_KEY_CACHE_SECONDS)"
    )
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
            after = await store.reindex(
                method=args.method,
                lists=args.lists,
                m=args.m,
                ef_construction=args.ef_construction,
                progress=show,
            )
            shape = f"lists={after.lists}" if after.method == "ivfflat" else f"m={after.m}"
            _say(f"done: {after.name} ({after.method}, {shape}, trained on {after.trained_rows})")
            _say(_calibration_line(after))
            return 0
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


def _calibration_line(info: VectorIndexInfo) -> str:
    c = info.calibration
    if c is None:
        return "calibration: none yet (searches use a default setting until one is measured)"
    return (
        f"calibration: {c.setting}={c.value} gives recall@{c.k} {c.recall:.3f} "
        f"(target {c.target:.3f}, {'met' if c.met else 'NOT met'}) on {c.rows} rows, "
        f"{c.queries} queries, measured {c.as_dict()['at']} in {c.seconds:.1f} s"
    )


def cmd_memory_status(args: argparse.Namespace) -> int:
    """Print the vector index, what it was trained on and what its calibration measured."""
    from chad_memory.database import close_db_connections, get_session_factory
    from chad_memory.stores.vectors import PgVectorStore

    async def runner() -> int:
        try:
            info = await PgVectorStore(get_session_factory()).index_info()
        finally:
            await close_db_connections()
        if info.method is None:
            _say(f"no vector index; {info.rows} rows, searches scan exactly")
            return 0
        shape = (
            f"lists={info.lists}"
            if info.method == "ivfflat"
            else f"m={info.m}, ef_construction={info.ef_construction}"
        )
        built = info.as_dict()["built_at"] or "unknown"
        _say(
            f"index: {info.name} ({info.method}, {shape}{'' if info.valid else ', INVALID'}); "
            f"trained on {info.trained_rows} rows, built {built}; table has {info.rows} rows"
        )
        _say(_calibration_line(info))
        if info.rebuild_due:
            _say("rebuild due: the table has outgrown the index (`chad-memory memory reindex`)")
        elif info.recalibration_due:
            _say("recalibration due: the next search starts it (or `chad-memory memory calibrate`)")
        return 0

    _prepare_embedded()
    return asyncio.run(runner())


def cmd_memory_calibrate(args: argparse.Namespace) -> int:
    """Calibrate the present index for VECTOR_TARGET_RECALL (or --target), without a rebuild."""
    from chad_memory.database import close_db_connections, get_session_factory
    from chad_memory.stores.vectors import PgVectorStore

    async def runner() -> int:
        try:
            store = PgVectorStore(get_session_factory(), target_recall=args.target)
            info = await store.calibrate()
        finally:
            await close_db_connections()
        _say(_calibration_line(info))
        return 0

    _prepare_embedded()
    return asyncio.run(runner())


def _recall_target(value: str) -> float:
    target = float(value)
    if not 0 < target <= 1:
        raise argparse.ArgumentTypeError("the target recall must be in (0, 1]")
    return target


def _run_on_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` on the process engine (starting the embedded server when needed)."""
    from chad_memory.database import close_db_connections, get_engine

    async def runner() -> T:
        try:
            return await work(get_engine())
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


def cmd_prune(args: argparse.Namespace) -> int:
    from chad_memory.retention import PruneCriteria, PruneResult, parse_duration, prune

    criteria = PruneCriteria.older_than(
        parse_duration(args.older_than),
        actor=args.actor,
        status=args.status,
        embeddings=args.with_embeddings,
    )

    def show(result: PruneResult) -> None:
        d = result.deleted
        _say(
            f"[{result.elapsed_s:6.1f}s] batch {result.batches}: {d['runs']} runs, "
            f"{d['steps']} steps, {d['llm_calls']} LLM calls deleted so far"
        )

    _say(f"pruning runs created before {criteria.cutoff.isoformat()}")
    result = _run_on_engine(
        lambda engine: prune(
            engine,
            criteria,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            vacuum=not args.no_vacuum,
            reclaim=args.reclaim,
            progress=show,
        )
    )
    d = result.deleted
    verb = "would delete" if result.dry_run else "deleted"
    print(
        f"{verb} {d['runs']} runs, {d['steps']} steps, {d['llm_calls']} LLM calls, "
        f"{d['artifacts']} artifacts, {d['embeddings']} embeddings"
        f"{f' in {result.batches} batches' if result.batches else ''}"
        f"{f'; then {result.vacuumed}' if result.vacuumed else ''}",
        flush=True,
    )
    return 0


def _since(value: str | None) -> datetime | None:
    from chad_memory.errors import InvalidInputError

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"--since must be an ISO 8601 date or time, got {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_export(args: argparse.Namespace) -> int:
    from chad_memory.archive import ExportScope, TransferCounts, export_to_file

    scope = ExportScope(actor=args.actor, since=_since(args.since))

    def show(counts: TransferCounts) -> None:
        _say(f"{counts.total} rows written ...")

    counts = _run_on_engine(
        lambda engine: export_to_file(engine, Path(args.out), scope, progress=show)
    )
    summary = ", ".join(f"{n} {kind.replace('_', ' ')}s" for kind, n in counts.rows.items())
    print(f"exported {counts.total} rows to {args.out}: {summary}", flush=True)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from chad_memory.archive import TransferCounts, import_file

    def show(counts: TransferCounts) -> None:
        _say(f"{counts.total} rows inserted, {counts.skipped} already there ...")

    path = Path(args.file)
    if not path.is_file():
        raise OSError(f"no such file: {path}")
    counts = _run_on_engine(lambda engine: import_file(engine, path, progress=show))
    print(
        f"imported {counts.total} rows ({counts.skipped} already present, "
        f"{counts.unlinked} links to rows outside the file left empty)",
        flush=True,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="chad-memory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (embedded database when no DATABASE_URL)")
    serve.add_argument("--host", default=os.environ.get("HOST", settings.host))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", settings.port)))
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (one per core is typical); the embedded database is shared",
    )
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
    reindex.add_argument("--m", type=int, default=HNSW_M, help="HNSW links per node")
    reindex.add_argument(
        "--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION, help="HNSW build beam"
    )
    reindex.set_defaults(func=cmd_memory_reindex)
    status = memory_sub.add_parser(
        "status", help="the vector index, rows trained on, calibrated setting and recall"
    )
    status.set_defaults(func=cmd_memory_status)
    calibrate = memory_sub.add_parser(
        "calibrate", help="measure the present index again and record the setting searches use"
    )
    calibrate.add_argument(
        "--target", type=_recall_target, default=None, help="default: VECTOR_TARGET_RECALL"
    )
    calibrate.set_defaults(func=cmd_memory_calibrate)

    prune_ = sub.add_parser(
        "prune", help="delete runs (with their steps, LLM calls, artifacts) older than a duration"
    )
    prune_.add_argument("--older-than", required=True, help="90d, 12h, 30m or 45s")
    prune_.add_argument("--actor", default=None, help="only this actor's runs")
    prune_.add_argument("--status", default=None, help="only runs with this status")
    prune_.add_argument(
        "--with-embeddings",
        action="store_true",
        help="also delete embeddings tied to the pruned runs (default: keep them, unlinked)",
    )
    prune_.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    prune_.add_argument("--batch-size", type=int, default=500, help="runs per transaction")
    prune_.add_argument("--no-vacuum", action="store_true", help="skip the VACUUM afterwards")
    prune_.add_argument(
        "--reclaim",
        action="store_true",
        help="VACUUM FULL afterwards: returns space to the OS but locks each table meanwhile",
    )
    prune_.set_defaults(func=cmd_prune)

    export = sub.add_parser("export", help="write runs, threads and embeddings as JSON Lines")
    export.add_argument("--out", required=True, help="FILE.jsonl, or FILE.jsonl.gz to compress")
    export.add_argument("--actor", default=None, help="only this actor's data")
    export.add_argument("--since", default=None, help="only rows from this ISO date/time on")
    export.set_defaults(func=cmd_export)

    import_ = sub.add_parser("import", help="load an export (ids kept; twice changes nothing)")
    import_.add_argument("file")
    import_.set_defaults(func=cmd_import)

    db = sub.add_parser("db", help="database chores")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_url = db_sub.add_parser("url", help="print the database URL in use")
    db_url.set_defaults(func=cmd_db_url)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Alembic names each autogenerate plugin it loads at INFO: noise for people running us.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
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
