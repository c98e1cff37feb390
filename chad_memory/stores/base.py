"""What every store shares: its `Database`, its retry rule, and the ownership checks.

The checks live here rather than in the service, so a library caller gets every rule an
HTTP caller gets: a run (or thread) with `actor=` is 404 when unknown and 403 when it is
another actor's, and a child may only point at steps of its own run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chad_memory.database import Database, RetryPolicy, SessionFactory
from chad_memory.errors import ForbiddenError, InvalidInputError, NotFoundError
from chad_memory.models import Run, Step, Thread
from chad_memory.stores.paging import CursorCodec


class Store:
    """A store over one `Database` (or a bare session factory, which is wrapped in one)."""

    def __init__(
        self,
        session_factory: Database | SessionFactory,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._db = Database.of(session_factory)
        # None: the Database's policy (from db_retry_attempts / db_retry_backoff_ms).
        self.retry_policy = retry_policy
        self._cursors = CursorCodec(self._db.settings.cursor_secret)

    @property
    def database(self) -> Database:
        return self._db

    @property
    def _sessions(self) -> SessionFactory:
        return self._db.session_factory


def check_owner_of(kind: str, row_id: uuid.UUID, owner: str | None, actor: str | None) -> None:
    """The actor rule: NotFoundError if there is no owner (no row), ForbiddenError if the
    row is another actor's; `actor=None` is a trusted caller and sees every row."""
    if owner is None:
        raise NotFoundError(f"{kind} {row_id} not found")
    if actor is not None and owner != actor:
        raise ForbiddenError(f"{kind} {row_id} belongs to another actor")


async def load_run(
    session: AsyncSession, run_id: uuid.UUID, actor: str | None, *, lock: bool = False
) -> Run:
    row = await session.get(Run, run_id, with_for_update=lock)
    check_owner_of("run", run_id, None if row is None else row.actor, actor)
    assert row is not None
    return row


async def check_run_owner(
    session: AsyncSession | AsyncConnection, run_id: uuid.UUID, actor: str | None
) -> None:
    """The run exists (and is `actor`'s): one indexed lookup of its actor."""
    owner = await session.scalar(select(Run.actor).where(Run.id == run_id))
    check_owner_of("run", run_id, owner, actor)


async def check_thread_for_run(
    session: AsyncSession, thread_id: uuid.UUID | None, run_actor: str
) -> None:
    """A run may only join a thread of the run's own actor."""
    if thread_id is None:
        return
    owner = await session.scalar(select(Thread.actor).where(Thread.id == thread_id))
    check_owner_of("thread", thread_id, owner, run_actor)


async def check_step_refs(
    session: AsyncSession, run_id: uuid.UUID, refs: Iterable[uuid.UUID | None]
) -> None:
    """Children may point only at steps of their own run (never another run's, nor
    another actor's)."""
    wanted = {ref for ref in refs if ref is not None}
    if not wanted:
        return
    found = set(
        await session.scalars(select(Step.id).where(Step.run_id == run_id, Step.id.in_(wanted)))
    )
    unknown_refs(run_id, wanted - found)


def unknown_refs(run_id: uuid.UUID, unknown: Iterable[Any]) -> None:
    names = ", ".join(sorted(str(u) for u in unknown))
    if names:
        raise InvalidInputError(f"step ids not found in run {run_id}: {names}")
