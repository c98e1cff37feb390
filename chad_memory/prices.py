"""What an LLM call costs when the client did not say: the price table.

Precedence, for a call by `actor` to `model` at `provider`, at the call's time t:

1. The user's prices (`model_prices`). Among the rows whose pattern matches the model,
   whose provider is the call's or empty, and that started at or before t, the most
   specific wins: the actor's own rows before operator-wide ones (actor empty), a named
   provider before any provider, an exact model name before a `*` pattern, a longer
   pattern before a shorter one; within the same (actor, provider, pattern) the row with
   the latest start. Rows with the same key are a price history.
2. The prices bundled with PyPI `genai-prices` (no network), in force at t, through its
   own `calc_price`, which knows cache read/write prices and tiers.
3. Otherwise the call has no cost (cost_source null), never a guessed one.

A call may name its model three ways: the response model (a dated snapshot such as
`gpt-4o-mini-2024-07-18`), `model` (the name usage counts it under) and the request
model. Each rule above tries them most exact first (`price_names`): a user price for
any of the names wins over a built-in price for any of them.

A call sent with a cost keeps it (cost_source 'client'). Changing prices never rewrites
stored costs; `PriceStore.recompute` (`chad-memory prices recompute --since`) does, on
request, for costs that came from the table.

Every new call is priced by `price_new_calls`, whichever way it arrives (the store and
the API, the LangChain tracer through either, OTLP spans), so these rules hold for all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

import genai_prices
from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    Uuid,
    bindparam,
    column,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from chad_memory.errors import InvalidInputError, NotFoundError
from chad_memory.models import ModelPrice, Run
from chad_memory.schemas import (
    COST_DECIMALS,
    EXACT,
    LLMCallFields,
    LLMCallRecord,
    ModelPriceRecord,
)

MILLION = Decimal(1_000_000)
_COST_QUANTUM = Decimal(1).scaleb(-COST_DECIMALS)
_COST_LIMIT = Decimal("1e10")
# Only for rounding a computed cost at 1e-20 (EXACT traps inexact results).
ROUNDING = Context(prec=100, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Tokens:
    """The counts a price applies to (OpenTelemetry GenAI: prompt includes the cache)."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0


def tokens_of(call: LLMCallFields | LLMCallRecord) -> Tokens:
    return Tokens(
        prompt=call.prompt_tokens,
        completion=call.completion_tokens,
        cached=call.cached_tokens,
        cache_write=call.cache_write_tokens,
    )


@dataclass(frozen=True)
class Quote:
    """A computed cost and the price that produced it, so a bill can be explained."""

    cost_usd: Decimal
    price_id: uuid.UUID | None
    price_ref: str


def _fit(cost: Decimal) -> Decimal:
    """Costs are stored with 20 decimals; a computed one with more (never the case with
    prices of up to 10 decimals per million tokens) is rounded half-even at 1e-20 USD."""
    if cost >= _COST_LIMIT:
        raise InvalidInputError(f"computed cost {cost} USD does not fit (must be < 1e10)")
    exponent = cost.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -COST_DECIMALS:
        return cost.quantize(_COST_QUANTUM, rounding=ROUND_HALF_EVEN, context=ROUNDING)
    return cost


def user_price_cost(price: ModelPriceRecord, tokens: Tokens) -> Decimal:
    """Uncached input at the input price, cache reads and writes at theirs (the input
    price when unset), output at the output price; all per million tokens."""
    uncached = tokens.prompt - tokens.cached - tokens.cache_write
    cached = price.cached_input_mtok if price.cached_input_mtok is not None else price.input_mtok
    write = price.cache_write_mtok if price.cache_write_mtok is not None else price.input_mtok
    with localcontext(EXACT):
        total = (
            uncached * price.input_mtok
            + tokens.cached * cached
            + tokens.cache_write * write
            + tokens.completion * price.output_mtok
        )
        return _fit(total / MILLION)


def builtin_quote(provider: str | None, model: str, tokens: Tokens, at: datetime) -> Quote | None:
    """genai-prices' own `calc_price` for the call, or None when it knows no such model."""
    usage = genai_prices.Usage(
        input_tokens=tokens.prompt,
        cache_read_tokens=tokens.cached,
        cache_write_tokens=tokens.cache_write,
        output_tokens=tokens.completion,
    )
    try:
        calc = genai_prices.calc_price(
            usage, model, provider_id=provider, genai_request_timestamp=at
        )
    except (LookupError, ValueError):
        return None
    ref = f"genai-prices {genai_prices.__version__}: {calc.provider.id}/{calc.model.id}"
    return Quote(cost_usd=_fit(calc.total_price), price_id=None, price_ref=ref)


def _glob_matches(model: ColumnElement[str] | str) -> ColumnElement[bool]:
    """`model` matches the row's pattern, where `*` is any run of characters."""
    like = func.replace(
        func.replace(
            func.replace(func.replace(ModelPrice.model_pattern, "\\", "\\\\"), "%", "\\%"),
            "_",
            "\\_",
        ),
        "*",
        "%",
    )
    subject = literal(model) if isinstance(model, str) else model
    return subject.like(like, escape="\\")


def _price_in_force(
    actor: ColumnElement[str] | QueryableAttribute[str] | str,
    provider: ColumnElement[str | None] | str | None,
    model: ColumnElement[str] | str,
    at: ColumnElement[datetime] | datetime,
) -> Select[Any]:
    """The user price row for a call (the module docstring's rule 1). A null provider
    (or a null in the `provider` column) matches only rows for any provider."""
    provider_ok: ColumnElement[bool] = ModelPrice.provider.is_(None)
    if provider is not None:
        provider_ok = provider_ok | (ModelPrice.provider == provider)
    return (
        select(ModelPrice)
        .where(
            (ModelPrice.actor == actor) | ModelPrice.actor.is_(None),
            provider_ok,
            _glob_matches(model),
            ModelPrice.starts_at <= at,
        )
        .order_by(
            ModelPrice.actor.is_not(None).desc(),
            ModelPrice.provider.is_not(None).desc(),
            (func.strpos(ModelPrice.model_pattern, "*") == 0).desc(),
            func.length(ModelPrice.model_pattern).desc(),
            ModelPrice.starts_at.desc(),
        )
        .limit(1)
    )


async def find_user_price(
    session: AsyncSession, *, actor: str, provider: str | None, model: str, at: datetime
) -> ModelPriceRecord | None:
    """The user price in force for a call by `actor` at `at`, if any."""
    row = await session.scalar(_price_in_force(actor, provider, model, at))
    return None if row is None else ModelPriceRecord.model_validate(row)


def _user_quote(price: ModelPriceRecord, tokens: Tokens) -> Quote:
    ref = (
        f"model_prices {price.id}: {price.provider or '*'}/{price.model_pattern} "
        f"from {price.starts_at.isoformat()}"
    )
    return Quote(cost_usd=user_price_cost(price, tokens), price_id=price.id, price_ref=ref)


def _price_keys_statement() -> tuple[Select[Any], list[str]]:
    """For each (run id, provider, model) of the arrays bound as run_ids, providers and
    models: now(), the key, and the user price in force for the run's actor (or nulls).
    Built once: a statement of bound arrays is compiled once and cached."""
    keys = (
        func.unnest(
            bindparam("run_ids", type_=ARRAY(Uuid)),
            bindparam("providers", type_=ARRAY(Text)),
            bindparam("models", type_=ARRAY(Text)),
        )
        .table_valued(column("run_id", Uuid), column("provider", Text), column("model", Text))
        .render_derived(name="keys")
    )
    price = _price_in_force(Run.actor, keys.c.provider, keys.c.model, func.now()).lateral()
    stmt = (
        select(func.now(), keys.c.run_id, keys.c.provider, keys.c.model, *price.c)
        .select_from(keys)
        .join(Run, Run.id == keys.c.run_id)
        .outerjoin(price, true())
    )
    return stmt, [col.name for col in price.c]


_PRICE_KEYS_STATEMENT, _PRICE_COLUMNS = _price_keys_statement()
_PRICE_ID = _PRICE_COLUMNS.index("id")


@dataclass(frozen=True)
class CallCost:
    """What a new call's cost columns hold: the cost and where it came from."""

    cost_usd: Decimal | None = None
    cost_source: str | None = None  # 'client', 'table', or None: no price known
    price_id: uuid.UUID | None = None
    price_ref: str | None = None

    def columns(self) -> dict[str, Any]:
        return asdict(self)


NO_COST = CallCost()


def _from_table(found: Quote | None) -> CallCost:
    if found is None:
        return NO_COST
    return CallCost(found.cost_usd, "table", found.price_id, found.price_ref)


async def price_new_calls(
    session: AsyncSession,
    calls: Sequence[tuple[uuid.UUID, LLMCallFields]],
    *,
    unfit: dict[int, str] | None = None,
) -> list[CallCost]:
    """The cost columns of calls (run id, call) being stored now, in order.

    A call that carries a cost keeps it exactly (cost_source 'client'); one without a
    model has none; the others are priced by the precedence in the module docstring at
    the transaction's now(), which is their created_at. One round trip for all of them
    (each distinct run, provider and model once: the run's actor and the user price in
    force), then genai-prices for those without a user price. NotFoundError: a run is
    missing. A computed cost past the column's range raises InvalidInputError, unless
    `unfit` is given: then that call's position and why are put there instead (OTLP
    refuses that span alone) and its cost is left empty.
    """
    costs = [
        CallCost(call.cost_usd, "client") if call.cost_usd is not None else NO_COST
        for _, call in calls
    ]
    unpriced = [
        (i, run_id, call, price_names(call))
        for i, (run_id, call) in enumerate(calls)
        if call.cost_usd is None
    ]
    wanted = sorted(
        {
            (run_id, call.provider or "", name)
            for _, run_id, call, names in unpriced
            for name in names
        }
    )
    if not wanted:
        return costs
    params = {
        "run_ids": [run_id for run_id, _, _ in wanted],
        "providers": [provider or None for _, provider, _ in wanted],
        "models": [model for _, _, model in wanted],
    }
    rows = (await session.execute(_PRICE_KEYS_STATEMENT, params)).all()
    found = {(row[1], row[2] or "", row[3]): row for row in rows}
    missing = sorted({run_id for run_id, _, _ in wanted} - {row[1] for row in rows})
    if missing:
        raise NotFoundError(f"run {missing[0]} not found")
    for i, run_id, call, names in unpriced:
        keyed = [found[(run_id, call.provider or "", name)] for name in names]
        if not keyed:
            continue
        tokens = tokens_of(call)
        try:
            user = next((row for row in keyed if row[4 + _PRICE_ID] is not None), None)
            if user is not None:
                price_row = {name: user[4 + j] for j, name in enumerate(_PRICE_COLUMNS)}
                price = ModelPriceRecord.model_validate(price_row)
                costs[i] = _from_table(_user_quote(price, tokens))
            else:
                first = _first_builtin(call.provider, names, tokens, keyed[0][0])
                costs[i] = _from_table(first)
        except InvalidInputError as exc:
            if unfit is None:
                raise
            unfit[i] = str(exc)
    return costs


def price_names(call: LLMCallFields | LLMCallRecord) -> list[str]:
    """The names a call's model goes by, most exact first: the response model (the
    snapshot that answered), the usage name, the request model; each once."""
    names = (call.response_model, call.model, call.request_model)
    return list(dict.fromkeys(name for name in names if name))


def _first_builtin(
    provider: str | None, names: Sequence[str], tokens: Tokens, at: datetime
) -> Quote | None:
    for name in names:
        found = builtin_quote(provider, name, tokens, at)
        if found is not None:
            return found
    return None


async def quote(
    session: AsyncSession,
    *,
    actor: str,
    provider: str | None,
    models: Sequence[str],
    tokens: Tokens,
    at: datetime,
) -> Quote | None:
    """The cost of a call named `models` (most exact first, `price_names`) by the
    precedence in the module docstring; None: no price."""
    for model in models:
        price = await find_user_price(session, actor=actor, provider=provider, model=model, at=at)
        if price is not None:
            return _user_quote(price, tokens)
    return _first_builtin(provider, models, tokens, at)
