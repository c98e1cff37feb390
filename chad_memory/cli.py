"""The `chad-memory` command: serve, migrate, and database chores."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from chad_memory.settings import get_settings

logger = logging.getLogger("chad_memory.cli")


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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chad_memory.database import resolve_database_url

    settings = get_settings()
    if settings.database_url is None:
        _say(f"no DATABASE_URL: starting the embedded PostgreSQL in {settings.chad_data_dir}")
        resolve_database_url()
        _migrate()
    elif args.migrate:
        _migrate()
    _say(f"serving on http://{args.host}:{args.port}")
    uvicorn.run(
        "apps.core_api.main:app",
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        proxy_headers=False,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    _migrate(args.revision)
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from chad_memory.database import resolve_database_url

    print(resolve_database_url())
    return 0


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
    return code


if __name__ == "__main__":
    sys.exit(main())
