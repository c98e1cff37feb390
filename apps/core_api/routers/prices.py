"""/prices: the caller's own model prices, which win over the built-in ones.

Operator-wide prices (set with `chad-memory prices set` without --actor) are listed here
too, but only the CLI changes them. Setting a price never changes stored costs;
POST /prices/recompute does, for the caller's calls priced from the table.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from pydantic import Field

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import AUTH_RESPONSES, PriceBody, Problem
from chad_memory.schemas import Input, ModelPriceCreate, ModelPriceRecord, UtcDatetime
from chad_memory.stores import prices as price_store
from chad_memory.stores.prices import RecomputePage

router = APIRouter(prefix="/prices", tags=["prices"], responses=AUTH_RESPONSES)


class RecomputeBody(Input):
    since: UtcDatetime
    until: UtcDatetime | None = None
    # The next_cursor of the previous answer: go on where it stopped.
    cursor: str | None = Field(default=None, max_length=512)


@router.get("", response_model=list[ModelPriceRecord])
async def list_prices(caller: CurrentCaller) -> list[ModelPriceRecord]:
    """The caller's prices and the operator-wide ones that apply to it."""
    return await caller.prices.list_prices(actor=caller.actor)


@router.put("", response_model=ModelPriceRecord)
async def set_price(body: PriceBody, caller: CurrentCaller) -> ModelPriceRecord:
    """Add a price, or replace the caller's price with the same provider, pattern and
    start."""
    return await caller.prices.set_price(ModelPriceCreate(**body.model_dump()), actor=caller.actor)


@router.delete(
    "/{price_id}",
    status_code=204,
    response_class=Response,
    responses={
        403: {"model": Problem, "description": "another actor's or an operator-wide price"},
        404: {"model": Problem, "description": "no price with this id"},
    },
)
async def delete_price(price_id: uuid.UUID, caller: CurrentCaller) -> Response:
    await caller.prices.delete_price(price_id, actor=caller.actor)
    return Response(status_code=204)


@router.post("/recompute", response_model=RecomputePage)
async def recompute(body: RecomputeBody, caller: CurrentCaller) -> RecomputePage:
    """Price the caller's calls in [since, until) again with today's table; costs sent by
    the client are never changed. At most RECOMPUTE_MAX_CALLS (20,000) calls a request:
    answers how many were seen and changed, and a `next_cursor` to send back (with the
    same since and until) until it is null."""
    return await caller.prices.recompute_page(
        since=body.since,
        until=body.until,
        actor=caller.actor,
        cursor=body.cursor,
        max_calls=price_store.RECOMPUTE_MAX_CALLS,
    )
