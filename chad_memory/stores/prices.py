"""The user's price table (`model_prices`) and recomputing stored costs on request.

Which price applies to a call is decided in chad_memory.prices; this store only keeps the
rows. `actor=None` rows are operator-wide (the CLI without --actor); the API manages only
the caller's own rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Numeric,
    Text,
    Uuid,
    bindparam,
    delete,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import ForbiddenError, InvalidInputError, NotFoundError
from chad_memory.models import LLMCall, ModelPrice
from chad_memory.prices import (
    NO_COST,
    CallCost,
    Quote,
    Tokens,
    _first_builtin,
    _price_in_force,
    _user_quote,
    price_names,
)
from chad_memory.schemas import ModelPriceCreate, ModelPriceRecord
from chad_memory.stores.base import Store
from chad_memory.stores.limits import row_values
from chad_memory.stores.paging import Keyset, record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor

RECOMPUTE_CHUNK = 500
# What one API request recomputes at most; the answer's next_cursor goes on from there.
RECOMPUTE_MAX_CALLS = 20_000


class RecomputePage(BaseModel):
    """How many calls a recompute saw and changed, and where to go on (None: done)."""

    seen: int
    changed: int
    next_cursor: str | None


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
        never touched. All of them, chunk by chunk (the CLI); `recompute_page` does a
        bounded share and says where to go on (the API).
        `progress(seen, changed)` is called after each chunk.
        """
        page = await self.recompute_page(
            since=since, until=until, actor=actor, max_calls=None, progress=progress
        )
        return page.changed

    async def recompute_page(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        actor: str | None = None,
        cursor: str | None = None,
        max_calls: int | None = RECOMPUTE_MAX_CALLS,
        progress: Callable[[int, int], None] | None = None,
    ) -> RecomputePage:
        """`recompute` over at most `max_calls` calls (None: all), from `cursor` on: each
        chunk of RECOMPUTE_CHUNK calls is one transaction of three statements (read the
        calls with the user price in force for each, locked; update the changed ones).
        `next_cursor` is None once every call in the window was seen."""
        actor = _check_actor(actor)
        if max_calls is not None and max_calls < 1:
            raise InvalidInputError("max_calls must be at least 1")
        after: tuple[datetime, uuid.UUID] | None = None
        if cursor is not None:
            at, call_id = self._cursors.decode(_KEYSET.scope, cursor, _KEYSET.kinds)
            after = (at, call_id)
        seen = changed = 0
        while max_calls is None or seen < max_calls:
            size = RECOMPUTE_CHUNK if max_calls is None else min(RECOMPUTE_CHUNK, max_calls - seen)
            keys, done = await self._recompute_chunk(since, until, actor, after, size)
            seen += len(keys)
            changed += done
            if progress is not None:
                progress(seen, changed)
            if len(keys) < size:
                return RecomputePage(seen=seen, changed=changed, next_cursor=None)
            after = keys[-1]
        assert after is not None
        next_cursor = self._cursors.encode(_KEYSET.scope, list(after))
        return RecomputePage(seen=seen, changed=changed, next_cursor=next_cursor)

    @retried
    async def _recompute_chunk(
        self,
        since: datetime,
        until: datetime | None,
        actor: str | None,
        after: tuple[datetime, uuid.UUID] | None,
        size: int,
    ) -> tuple[list[tuple[datetime, uuid.UUID]], int]:
        # Costs from the table, and calls without a cost. A cost without a source was
        # reported by the caller (OTLP spans stored one so before they were marked
        # 'client'), so it is never overwritten either.
        stmt = _CHUNK.where(
            LLMCall.created_at >= since,
            (LLMCall.cost_source == "table") | LLMCall.cost_usd.is_(None),
        )
        if until is not None:
            stmt = stmt.where(LLMCall.created_at < until)
        if actor is not None:
            stmt = stmt.where(LLMCall.actor == actor)
        if after is not None:
            stmt = stmt.where(tuple_(LLMCall.created_at, LLMCall.id) > tuple_(*after))
        stmt = stmt.order_by(LLMCall.created_at, LLMCall.id).limit(size)
        async with transaction(self._db, "recompute_costs") as session:
            rows = (await session.execute(stmt.with_for_update(of=LLMCall))).all()
            updates: list[tuple[uuid.UUID, CallCost]] = []
            for row in rows:
                new = _priced_again(row)
                if new != CallCost(row.cost_usd, row.cost_source, row.price_id, row.price_ref):
                    updates.append((row.id, new))
            if updates:
                await session.execute(
                    _UPDATE_COSTS,
                    {
                        "ids": [call_id for call_id, _ in updates],
                        "costs": [cost.cost_usd for _, cost in updates],
                        "sources": [cost.cost_source for _, cost in updates],
                        "price_ids": [cost.price_id for _, cost in updates],
                        "refs": [cost.price_ref for _, cost in updates],
                    },
                )
        return [(row.created_at, row.id) for row in rows], len(updates)


def _priced_again(row: Any) -> CallCost:
    """A stored call's cost by the table as it is now, at the call's own time: the user
    price for the most exact of its names (`price_names`), else genai-prices'."""
    names = price_names(row)
    if not names:
        return NO_COST
    tokens = Tokens(
        prompt=row.prompt_tokens,
        completion=row.completion_tokens,
        cached=row.cached_tokens,
        cache_write=row.cache_write_tokens,
    )
    mapping = row._mapping
    found: Quote | None = None
    # The laterals in price_names' order: response model, model, request model.
    for lateral in _PRICES:
        if mapping[lateral.c.id] is not None:
            price = ModelPriceRecord.model_validate({c.name: mapping[c] for c in lateral.c})
            found = _user_quote(price, tokens)
            break
    else:
        found = _first_builtin(row.provider, names, tokens, row.created_at)
    if found is None:
        return NO_COST
    return CallCost(found.cost_usd, "table", found.price_id, found.price_ref)


# Each call with the user price in force for each of its names (or nulls), in one
# statement per chunk; the names in `price_names`' order.
_PRICES = tuple(
    _price_in_force(
        LLMCall.actor,
        LLMCall.__table__.c.provider,
        LLMCall.__table__.c[name],
        LLMCall.__table__.c.created_at,
    ).lateral(f"price_{name}")
    for name in ("response_model", "model", "request_model")
)
_CHUNK = (
    select(
        LLMCall.id,
        LLMCall.created_at,
        LLMCall.provider,
        LLMCall.model,
        LLMCall.request_model,
        LLMCall.response_model,
        LLMCall.prompt_tokens,
        LLMCall.completion_tokens,
        LLMCall.cached_tokens,
        LLMCall.cache_write_tokens,
        LLMCall.cost_usd,
        LLMCall.cost_source,
        LLMCall.price_id,
        LLMCall.price_ref,
        *(column for lateral in _PRICES for column in lateral.c),
    )
    .select_from(LLMCall)
    .outerjoin(_PRICES[0], true())
    .outerjoin(_PRICES[1], true())
    .outerjoin(_PRICES[2], true())
)
_UPDATE_COSTS = text(
    "UPDATE llm_calls SET cost_usd = v.cost_usd, cost_source = v.cost_source, "
    "price_id = v.price_id, price_ref = v.price_ref "
    "FROM unnest(:ids, :costs, :sources, :price_ids, :refs) "
    "AS v(id, cost_usd, cost_source, price_id, price_ref) WHERE llm_calls.id = v.id"
).bindparams(
    bindparam("ids", type_=ARRAY(Uuid)),
    bindparam("costs", type_=ARRAY(Numeric)),
    bindparam("sources", type_=ARRAY(Text)),
    bindparam("price_ids", type_=ARRAY(Uuid)),
    bindparam("refs", type_=ARRAY(Text)),
)
_KEYSET = Keyset("prices.recompute", (LLMCall.created_at, LLMCall.id), descending=False)
