"""The user's price table (`model_prices`) and recomputing stored costs on request.

Which price applies to a call is decided in chad_memory.prices; this store only keeps the
rows. `actor=None` rows are operator-wide (the CLI without --actor); the API manages only
the caller's own rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import ColumnElement, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import ForbiddenError, NotFoundError
from chad_memory.models import LLMCall, ModelPrice
from chad_memory.prices import price_names, quote, tokens_of
from chad_memory.schemas import LLMCallRecord, ModelPriceCreate, ModelPriceRecord
from chad_memory.stores.base import Store
from chad_memory.stores.limits import row_values
from chad_memory.stores.paging import record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor

RECOMPUTE_CHUNK = 500


def _check_actor(actor: str | None) -> str | None:
    """None is the operator-wide owner; anything else follows the actor rule."""
    return None if actor is None else check_actor(actor)


class PriceStore(Store):
    """User prices. Every method is one transaction (recompute: one per chunk)."""

    @retried
    async def set_price(self, price: ModelPriceCreate, *, actor: str | None) -> ModelPriceRecord:
        """Insert a price, or replace the one with the same actor, provider, pattern and
        start. Stored costs do not change (see `recompute`)."""
        values = row_values(price)
        values["actor"] = _check_actor(actor)
        stmt = pg_insert(ModelPrice).values(**values)
        prices = ("input_mtok", "cached_input_mtok", "cache_write_mtok", "output_mtok")
        upsert = stmt.on_conflict_do_update(
            index_elements=["actor", "provider", "model_pattern", "starts_at"],
            set_={name: stmt.excluded[name] for name in prices},
        ).returning(ModelPrice)
        async with transaction(self._db, "set_price") as session:
            row = await session.scalar(upsert, execution_options={"populate_existing": True})
            return ModelPriceRecord.model_validate(row)

    @retried
    async def list_prices(
        self, *, actor: str | None, include_shared: bool = True
    ) -> list[ModelPriceRecord]:
        """An actor's prices (and, with include_shared, the operator-wide ones that apply
        to it too); with actor=None, the operator-wide ones only."""
        actor = _check_actor(actor)
        cond: ColumnElement[bool] = ModelPrice.actor.is_(None)
        if actor is not None:
            own = ModelPrice.actor == actor
            cond = own | cond if include_shared else own
        stmt = (
            record_select(ModelPrice, ModelPriceRecord)
            .where(cond)
            .order_by(
                ModelPrice.actor.nulls_first(),
                ModelPrice.provider.nulls_first(),
                ModelPrice.model_pattern,
                ModelPrice.starts_at,
            )
        )
        async with read(self._db, "list_prices") as conn:
            rows = (await conn.execute(stmt)).mappings()
            return [ModelPriceRecord.model_validate(r) for r in rows]

    @retried
    async def delete_price(self, price_id: uuid.UUID, *, actor: str | None) -> None:
        """Delete a price row. Calls it priced keep their cost and price_ref; their
        price_id becomes null. `actor` may delete only its own rows; None: operator-wide."""
        actor = _check_actor(actor)
        async with transaction(self._db, "delete_price") as session:
            row = await session.get(ModelPrice, price_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"price {price_id} not found")
            if row.actor != actor:
                raise ForbiddenError(f"price {price_id} belongs to another actor")
            await session.execute(delete(ModelPrice).where(ModelPrice.id == price_id))

    async def recompute(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        actor: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Price again, with the table as it is now, the calls made in [since, until)
        whose cost did not come from the client; returns how many costs changed.

        Each call is priced as of its own created_at. Client-sent (reported) costs are
        never touched.
        `progress(seen, changed)` is called after each chunk.
        """
        actor = _check_actor(actor)
        seen = changed = 0
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            chunk, done = await self._recompute_chunk(since, until, actor, after)
            seen += len(chunk)
            changed += done
            if progress is not None:
                progress(seen, changed)
            if len(chunk) < RECOMPUTE_CHUNK:
                return changed
            after = (chunk[-1].created_at, chunk[-1].id)

    @retried
    async def _recompute_chunk(
        self,
        since: datetime,
        until: datetime | None,
        actor: str | None,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> tuple[list[LLMCallRecord], int]:
        # Costs from the table, and calls without a cost. A cost without a source was
        # reported by the caller (OTLP spans stored one so before they were marked
        # 'client'), so it is never overwritten either.
        stmt = select(LLMCall).where(
            LLMCall.created_at >= since,
            (LLMCall.cost_source == "table") | LLMCall.cost_usd.is_(None),
        )
        if until is not None:
            stmt = stmt.where(LLMCall.created_at < until)
        if actor is not None:
            stmt = stmt.where(LLMCall.actor == actor)
        if after is not None:
            stmt = stmt.where(tuple_(LLMCall.created_at, LLMCall.id) > tuple_(*after))
        stmt = stmt.order_by(LLMCall.created_at, LLMCall.id).limit(RECOMPUTE_CHUNK)
        changed = 0
        async with transaction(self._db, "recompute_costs") as session:
            rows = list(await session.scalars(stmt.with_for_update()))
            calls = [(row.actor, LLMCallRecord.model_validate(row)) for row in rows]
            for call_actor, call in calls:
                found = await quote(
                    session,
                    actor=call_actor,
                    provider=call.provider,
                    models=price_names(call),
                    tokens=tokens_of(call),
                    at=call.created_at,
                )
                new = (
                    (None, None, None, None)
                    if found is None
                    else (found.cost_usd, "table", found.price_id, found.price_ref)
                )
                old = (call.cost_usd, call.cost_source, call.price_id, call.price_ref)
                if new == old:
                    continue
                changed += 1
                await session.execute(
                    update(LLMCall)
                    .where(LLMCall.id == call.id)
                    .values(cost_usd=new[0], cost_source=new[1], price_id=new[2], price_ref=new[3])
                )
        return [c for _, c in calls], changed
