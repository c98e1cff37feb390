"""Artifacts and LLM calls: the records a run keeps beside its steps.

Both may name a step (`step_id`), which must be a step of the same run; both are read
oldest first, whole (`get_*`) or a page at a time (`list_*`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.models import Artifact, LLMCall, Step
from chad_memory.prices import price_new_calls
from chad_memory.schemas import (
    ArtifactCreate,
    ArtifactRecord,
    LLMCallCreate,
    LLMCallRecord,
    Page,
)
from chad_memory.stores.base import Store, check_run_owner, check_step_refs
from chad_memory.stores.limits import row_values
from chad_memory.stores.paging import Keyset, keyset_page, record_select
from chad_memory.stores.transactions import read, retried, transaction

ARTIFACTS = Keyset("artifacts", (Artifact.created_at, Artifact.id), descending=False)
# Calls in the order they ran: start time, then the order they were stored in.
LLM_CALLS = Keyset("llm_calls", (LLMCall.started_at, LLMCall.seq, LLMCall.id), descending=False)


def default_started_at(step_id: uuid.UUID | None) -> ColumnElement[Any]:
    """A call sent without a start time started with its step, else when it is stored."""
    if step_id is None:
        return func.now()
    step_start = select(Step.started_at).where(Step.id == step_id).scalar_subquery()
    return func.coalesce(step_start, func.now())


def calls_of(run_id: uuid.UUID) -> Select[Any]:
    return record_select(LLMCall, LLMCallRecord).where(LLMCall.run_id == run_id)


class ChildMethods(Store):
    # Artifacts ------------------------------------------------------------------------

    @retried
    async def save_artifact(
        self, artifact: ArtifactCreate, *, actor: str | None = None
    ) -> ArtifactRecord:
        async with transaction(self._db, "save_artifact") as session:
            await check_run_owner(session, artifact.run_id, actor)
            await check_step_refs(session, artifact.run_id, [artifact.step_id])
            row = await session.scalar(
                pg_insert(Artifact).values(**row_values(artifact)).returning(Artifact)
            )
            record = ArtifactRecord.model_validate(row)
        self._db.ingested("artifacts", 1)
        return record

    @retried
    async def get_artifacts(
        self, run_id: uuid.UUID, *, actor: str | None = None
    ) -> list[ArtifactRecord]:
        stmt = ARTIFACTS.order(
            record_select(Artifact, ArtifactRecord).where(Artifact.run_id == run_id)
        )
        async with read(self._db, "get_artifacts") as conn:
            if actor is not None:
                await check_run_owner(conn, run_id, actor)
            rows = await conn.execute(stmt)
            return [ArtifactRecord.model_validate(dict(r._mapping)) for r in rows]

    @retried
    async def list_artifacts(
        self,
        run_id: uuid.UUID,
        *,
        actor: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ArtifactRecord]:
        stmt = record_select(Artifact, ArtifactRecord).where(Artifact.run_id == run_id)
        async with read(self._db, "list_artifacts") as conn:
            await check_run_owner(conn, run_id, actor)
            return await keyset_page(
                conn, stmt, ARTIFACTS, ArtifactRecord, self._cursors, limit=limit, cursor=cursor
            )

    # LLM calls ------------------------------------------------------------------------

    @retried
    async def save_llm_call(
        self, call: LLMCallCreate, *, actor: str | None = None
    ) -> LLMCallRecord:
        """Store a call. Without a cost_usd, the cost comes from the price table in force
        now (chad_memory.prices), recorded with its source and price; with one, it is kept
        exactly as sent (cost_source 'client')."""
        values = row_values(call)
        values["total_tokens"] = call.stored_total_tokens
        if values["started_at"] is None:
            values["started_at"] = default_started_at(call.step_id)
        async with transaction(self._db, "save_llm_call") as session:
            await check_run_owner(session, call.run_id, actor)
            await check_step_refs(session, call.run_id, [call.step_id])
            [cost] = await price_new_calls(session, [(call.run_id, call)])
            values.update(cost.columns())
            row = await session.scalar(pg_insert(LLMCall).values(**values).returning(LLMCall))
            record = LLMCallRecord.model_validate(row)
        self._db.ingested("llm_calls", 1)
        return record

    @retried
    async def get_llm_calls(
        self, run_id: uuid.UUID, *, actor: str | None = None
    ) -> list[LLMCallRecord]:
        stmt = LLM_CALLS.order(calls_of(run_id))
        async with read(self._db, "get_llm_calls") as conn:
            if actor is not None:
                await check_run_owner(conn, run_id, actor)
            rows = await conn.execute(stmt)
            return [LLMCallRecord.model_validate(dict(r._mapping)) for r in rows]

    @retried
    async def list_llm_calls(
        self,
        run_id: uuid.UUID,
        *,
        actor: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[LLMCallRecord]:
        async with read(self._db, "list_llm_calls") as conn:
            await check_run_owner(conn, run_id, actor)
            return await keyset_page(
                conn,
                calls_of(run_id),
                LLM_CALLS,
                LLMCallRecord,
                self._cursors,
                limit=limit,
                cursor=cursor,
            )
