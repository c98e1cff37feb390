"""`chad-memory keys create|list|revoke`: API keys, printed for people and scripts."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chad_memory.cli.console import _say
from chad_memory.cli.database import _prepare_embedded
from chad_memory.settings import get_settings
from chad_memory.stores.keys import ApiKeyStore

T = TypeVar("T")


def _run_with_store(work: Callable[[ApiKeyStore], Awaitable[T]]) -> T:
    from chad_memory.database import close_db_connections, get_session_factory

    async def runner() -> T:
        try:
            return await work(ApiKeyStore(get_session_factory()))
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


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
