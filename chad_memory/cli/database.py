"""The database a command runs on: migrating it, starting the embedded server when there
is no DATABASE_URL, running a coroutine on the process engine; and the `migrate` and
`db url` commands.

Separate from the command groups because each of them needs a database the same way.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from chad_memory.cli.console import _say
from chad_memory.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


def _migrate(revision: str = "head") -> None:
    from chad_memory.database import resolve_direct_database_url
    from chad_memory.migrations import upgrade

    url = resolve_direct_database_url()
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


def cmd_migrate(args: argparse.Namespace) -> int:
    _migrate(args.revision)
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from chad_memory.database import resolve_database_url

    print(resolve_database_url())
    return 0


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
