"""API keys: create, list, revoke, and authenticate a presented secret.

A key is `cm_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: a leaked
database does not leak usable keys, and lookup stays one indexed equality.

A key that authenticated is trusted for `api_key_cache_seconds` (default 10) in the
process that checked it, so most requests never ask the database who is calling; a
revocation therefore takes effect within that time. `last_used_at` is written at most
once a minute per key, in the background, never on the request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import delete, exists, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.database import Database, SessionFactory
from chad_memory.errors import ChadMemoryError, NotFoundError
from chad_memory.models import ApiKey, DashboardSignOut
from chad_memory.schemas import Record
from chad_memory.stores.base import Store
from chad_memory.stores.paging import record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor, check_text

logger = logging.getLogger(__name__)

KEY_PREFIX = "cm_"
# last_used_at is refreshed at most this often, so authentication is not a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyRecord(Record):
    id: uuid.UUID
    actor: str
    name: str | None
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_LIVE_KEY = record_select(ApiKey, ApiKeyRecord).where(ApiKey.revoked_at.is_(None))


class CreatedApiKey(BaseModel):
    """A new key: `secret` is shown once and cannot be recovered later."""

    key: ApiKeyRecord
    secret: str


class ApiKeyStore(Store):
    def __init__(
        self, session_factory: Database | SessionFactory, *, cache_seconds: float | None = None
    ) -> None:
        super().__init__(session_factory)
        self.cache_seconds = (
            self._db.settings.api_key_cache_seconds if cache_seconds is None else cache_seconds
        )
        # digest -> (record, monotonic time it was read); only live keys are kept.
        self._cache: dict[str, tuple[ApiKeyRecord, float]] = {}
        # key id -> when last_used_at was last written (or scheduled) by this process.
        self._touched: dict[uuid.UUID, datetime] = {}
        # Lookups under way, by digest: concurrent requests with the same uncached key
        # (every client of one agent when its entry expires) share one.
        self._pending: dict[str, asyncio.Future[ApiKeyRecord | None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    @retried
    async def create_key(self, actor: str, name: str | None = None) -> CreatedApiKey:
        check_actor(actor)
        if name is not None:
            check_text(name, "name")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        stmt = (
            pg_insert(ApiKey)
            .values(
                id=uuid.uuid4(),
                actor=actor,
                name=name,
                prefix=secret[: len(KEY_PREFIX) + 6],
                key_hash=hash_key(secret),
            )
            .returning(ApiKey)
        )
        async with transaction(self._sessions, "create_key") as session:
            row = await session.scalar(stmt)
            return CreatedApiKey(key=ApiKeyRecord.model_validate(row), secret=secret)

    @retried
    async def list_keys(self, actor: str) -> list[ApiKeyRecord]:
        stmt = (
            record_select(ApiKey, ApiKeyRecord)
            .where(ApiKey.actor == actor)
            .order_by(ApiKey.created_at)
        )
        async with read(self._db, "list_keys") as conn:
            return [ApiKeyRecord.model_validate(r) for r in (await conn.execute(stmt)).mappings()]

    @retried
    async def revoke_key(self, key_id: uuid.UUID) -> ApiKeyRecord:
        """Revoke (idempotently: a revoked key keeps its first revocation time).

        Processes that authenticated the key in the last `api_key_cache_seconds` accept it
        until that time has passed; this process forgets it at once.
        """
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(ApiKey)
        )
        async with transaction(self._sessions, "revoke_key") as session:
            row = await session.scalar(stmt)
            if row is None:
                raise NotFoundError(f"api key {key_id} not found")
            record = ApiKeyRecord.model_validate(row)
        self._cache = {d: hit for d, hit in self._cache.items() if hit[0].id != key_id}
        return record

    async def authenticate(self, secret: str) -> ApiKeyRecord | None:
        """The live key matching `secret`, or None (unknown or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        digest = hash_key(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[1] < self.cache_seconds:
            record = hit[0]
        else:
            found = await self._shared_lookup(digest)
            if found is None:
                self._cache.pop(digest, None)
                return None
            record = found
            if self.cache_seconds > 0:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (record, now)
        self._touch(record)
        return record

    async def _shared_lookup(self, digest: str) -> ApiKeyRecord | None:
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(digest))
            self._pending[digest] = pending
            pending.add_done_callback(lambda _: self._pending.pop(digest, None))
        # Shielded: one waiter giving up (its client went away) must not cancel the
        # lookup the others wait for.
        return await asyncio.shield(pending)

    @retried
    async def _lookup(self, digest: str) -> ApiKeyRecord | None:
        stmt = _LIVE_KEY.where(ApiKey.key_hash == digest)
        async with read(self._db, "authenticate") as conn:
            row = (await conn.execute(stmt)).first()
            return None if row is None else ApiKeyRecord.model_validate(dict(row._mapping))

    def _touch(self, record: ApiKeyRecord) -> None:
        """Schedule the last_used_at write when the stored one is a minute old."""
        wall = datetime.now(UTC)
        last = self._touched.get(record.id) or record.last_used_at
        if last is not None and wall - last < LAST_USED_RESOLUTION:
            return
        self._touched[record.id] = wall
        task = asyncio.get_running_loop().create_task(self._write_last_used(record.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, key_id: uuid.UUID) -> None:
        stmt = update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=func.now())
        try:
            async with transaction(self._db, "touch_key") as session:
                await session.execute(stmt)
        except ChadMemoryError as exc:  # a usage timestamp is not worth failing over
            logger.info("could not record key use: %s", exc)
            self._touched.pop(key_id, None)

    async def aclose(self) -> None:
        """Wait for pending last_used_at writes (at shutdown)."""
        if self._background:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._background, return_exceptions=True)

    @retried
    async def get_live_key(
        self, key_id: uuid.UUID, *, session_id: str | None = None
    ) -> ApiKeyRecord | None:
        """The key with this id unless it is unknown or revoked, read now (not from the
        cache): a dashboard session remembers the key it began with and ends as soon as
        that key is revoked. With `session_id`, also None once that dashboard session was
        signed out (`sign_out`): one query answers both."""
        stmt = _LIVE_KEY.where(ApiKey.id == key_id)
        if session_id is not None:
            stmt = stmt.where(~exists().where(DashboardSignOut.sid == session_id))
        async with read(self._db, "get_live_key") as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        return None if row is None else ApiKeyRecord.model_validate(row)

    @retried
    async def sign_out(self, session_id: str, *, expires_at: datetime) -> None:
        """End a dashboard session for good: `get_live_key(..., session_id=)` refuses it
        from now on. Sign-outs whose cookies have expired are deleted on the way."""
        check_text(session_id, "session_id")
        async with transaction(self._db, "sign_out") as session:
            await session.execute(
                pg_insert(DashboardSignOut)
                .values(sid=session_id, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=["sid"])
            )
            await session.execute(
                delete(DashboardSignOut).where(DashboardSignOut.expires_at < func.now())
            )
