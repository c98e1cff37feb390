"""API keys: create, list, revoke, and authenticate a presented secret.

A key is `cm_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: a leaked
database does not leak usable keys, and lookup stays one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import NotFoundError
from chad_memory.models import ApiKey
from chad_memory.schemas import Record
from chad_memory.stores.transactions import SessionFactory, retried, transaction
from chad_memory.validation import check_text

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


class CreatedApiKey(BaseModel):
    """A new key: `secret` is shown once and cannot be recovered later."""

    key: ApiKeyRecord
    secret: str


class ApiKeyStore:
    def __init__(self, session_factory: SessionFactory) -> None:
        self._sessions = session_factory

    async def create_key(self, actor: str, name: str | None = None) -> CreatedApiKey:
        check_text(actor, "actor")
        if not actor or len(actor) > 255:
            raise ValueError("actor must be 1 to 255 characters")
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
        stmt = select(ApiKey).where(ApiKey.actor == actor).order_by(ApiKey.created_at)
        async with transaction(self._sessions, "list_keys") as session:
            return [ApiKeyRecord.model_validate(r) for r in await session.scalars(stmt)]

    async def revoke_key(self, key_id: uuid.UUID) -> ApiKeyRecord:
        """Revoke (idempotently: a revoked key keeps its first revocation time)."""
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
            return ApiKeyRecord.model_validate(row)

    @retried
    async def authenticate(self, secret: str) -> ApiKeyRecord | None:
        """The live key matching `secret`, or None (unknown or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        digest = hash_key(secret)
        async with transaction(self._sessions, "authenticate") as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
            if row is None:
                return None
            record = ApiKeyRecord.model_validate(row)
            last = record.last_used_at
            if last is None or datetime.now(UTC) - last > LAST_USED_RESOLUTION:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=func.now())
                )
            return record

    @retried
    async def get_live_key(self, key_id: uuid.UUID) -> ApiKeyRecord | None:
        """The key with this id unless it is unknown or revoked: a dashboard session
        remembers the key it began with and ends when that key is revoked."""
        async with transaction(self._sessions, "get_live_key") as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            )
            return None if row is None else ApiKeyRecord.model_validate(row)
