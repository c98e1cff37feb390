"""The `chad-memory` command: serve, migrate, and database chores."""

from __future__ import annotations

import argparse
import logging
import os
import uuid
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from chad_memory.cli.bulk import cmd_export, cmd_import, cmd_prune
from chad_memory.cli.console import _say
from chad_memory.cli.database import cmd_db_url, cmd_migrate
from chad_memory.cli.keys import cmd_keys_create, cmd_keys_list, cmd_keys_revoke
from chad_memory.cli.memory import (
    _recall_target,
    cmd_memory_calibrate,
    cmd_memory_reindex,
    cmd_memory_status,
)
from chad_memory.cli.prices import (
    _price,
    _timestamp,
    cmd_prices_delete,
    cmd_prices_list,
    cmd_prices_recompute,
    cmd_prices_set,
)
from chad_memory.cli.serve import cmd_serve
from chad_memory.errors import ChadMemoryError
from chad_memory.settings import get_settings
from chad_memory.vector_index import HNSW_EF_CONSTRUCTION, HNSW_M, METHODS

# The commands live in one module per group (serve, keys, memory, prices, bulk, and
# database for migrate / db url); this module is the parser that routes to them and
# `main`, the entry point. The docstring above is the parser's description (--help).

logger = logging.getLogger("chad_memory.cli")


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
        "--otlp-grpc-port",
        type=int,
        default=None,
        help="also take OTLP over gRPC on this port (4317 is OTLP's); off unless given",
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
    reindex.add_argument("--method", choices=METHODS, default="ivfflat")
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

    prices = sub.add_parser("prices", help="model prices (USD per million tokens)")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    actor_help = "the actor the price is for (default: every actor, operator-wide)"
    set_ = prices_sub.add_parser(
        "set", help="add a price, or replace the one with the same actor/provider/model/start"
    )
    set_.add_argument("--model", required=True, help='a model name or a pattern like "gpt-4o*"')
    set_.add_argument("--provider", default=None, help="default: any provider")
    set_.add_argument("--actor", default=None, help=actor_help)
    set_.add_argument("--input", type=_price, required=True, help="input, per million tokens")
    set_.add_argument("--output", type=_price, required=True, help="output, per million tokens")
    set_.add_argument("--cached-input", type=_price, default=None, help="default: --input")
    set_.add_argument("--cache-write", type=_price, default=None, help="default: --input")
    set_.add_argument(
        "--starts-at", type=_timestamp, default=None, help="in force from (default: now)"
    )
    set_.set_defaults(func=cmd_prices_set)
    plist = prices_sub.add_parser("list", help="list prices (an actor's, with operator-wide)")
    plist.add_argument("--actor", default=None)
    plist.set_defaults(func=cmd_prices_list)
    pdelete = prices_sub.add_parser("delete", help="delete a price by id")
    pdelete.add_argument("id", type=uuid.UUID)
    pdelete.add_argument("--actor", default=None, help="the price's actor (default: none)")
    pdelete.set_defaults(func=cmd_prices_delete)
    recompute = prices_sub.add_parser(
        "recompute", help="price stored calls again with today's table (never client costs)"
    )
    recompute.add_argument("--since", type=_timestamp, required=True, help="ISO 8601 or 30d")
    recompute.add_argument("--until", type=_timestamp, default=None)
    recompute.add_argument("--actor", default=None, help="default: every actor")
    recompute.set_defaults(func=cmd_prices_recompute)
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
    whose = import_.add_mutually_exclusive_group(required=True)
    whose.add_argument(
        "--actor", help="import as this actor: every row and every parent must be its own"
    )
    whose.add_argument(
        "--all-actors",
        action="store_true",
        help="restore a whole database: each row as its own actor",
    )
    import_.set_defaults(func=cmd_import)

    db = sub.add_parser("db", help="database chores")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_url = db_sub.add_parser("url", help="print the database URL in use")
    db_url.set_defaults(func=cmd_db_url)
    return parser


def log_level() -> int:
    """LOG_LEVEL for our own loggers (the access log among them), not only uvicorn's.

    Invalid settings fall back to INFO here: the command itself reports them.
    """
    try:
        name = get_settings().log_level
    except ValueError:
        return logging.INFO
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=log_level(), format="%(levelname)s %(name)s: %(message)s")
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
