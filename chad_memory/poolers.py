"""Talking to PostgreSQL through a transaction-mode pooler (PgBouncer, Supavisor, Neon's).

Such a pooler lends a server connection for one transaction at a time: a client's next
transaction may run on another server connection, and so may a statement outside a
transaction. So nothing may outlive a transaction on the server side:

- No named prepared statements. asyncpg's statement cache and SQLAlchemy's both name
  theirs; on a shared server connection two clients' `__asyncpg_stmt_1__` collide
  ("already exists"), and a name prepared on one server is missing on the next ("does not
  exist"). PgBouncer 1.21+ can track them; 1.18 (Debian bookworm's) and most hosted
  poolers cannot. `DB_POOLER=transaction` turns both caches off and has SQLAlchemy prepare
  with the unnamed statement, which asyncpg parses again with each execution, in the same
  message batch: one server connection from Parse to Sync.
- No session settings sent at connection start beyond the ones a pooler forwards
  (`application_name`): `statement_timeout` is set on the database role instead
  (`ALTER ROLE ... SET statement_timeout = '30s'`), where every pooled connection has it.
- No session-level advisory locks or `SET`s that must outlive a transaction. The
  retention sweeper holds its lock in an open transaction of its own; index builds and
  calibration (`CREATE INDEX CONCURRENTLY`, settings across several statements) and
  migrations need a session, so they go to `DIRECT_DATABASE_URL` (the server itself, or
  a session-mode pooler), like Prisma's `directUrl`.
"""

from __future__ import annotations

from typing import Any, Literal

Pooler = Literal["none", "session", "transaction"]
POOLERS: tuple[Pooler, ...] = ("none", "session", "transaction")


def _unnamed() -> str:
    return ""


def driver_options(pooler: Pooler) -> dict[str, Any]:
    """asyncpg and SQLAlchemy connect arguments for `pooler` (none for a plain server)."""
    if pooler != "transaction":
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unnamed,
    }


def forwards_startup_setting(pooler: Pooler, name: str) -> bool:
    """Whether a setting may travel in the startup packet (PgBouncer refuses the rest)."""
    return pooler != "transaction" or name == "application_name"
