"""Costs from the price table: genai-prices' own result, user prices by start date, recompute."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    ForbiddenError,
    LLMCallCreate,
    ModelPriceCreate,
    NotFoundError,
    PostgresStore,
    PriceStore,
    RunCreate,
)
from chad_memory.models import LLMCall
from chad_memory.prices import price_new_calls
from chad_memory.schemas import LLMCallRecord

# (provider, model, prompt, cached, cache_write, completion): several providers, with and
# without cache reads and writes.
BUILTIN_CASES = [
    ("openai", "gpt-4o", 1000, 400, 0, 200),
    ("openai", "gpt-4o-mini", 123_456, 100_000, 0, 7_890),
    ("anthropic", "claude-sonnet-4-5", 5000, 2000, 1000, 800),
    ("anthropic", "claude-3-5-haiku-latest", 2048, 0, 1024, 99),
    ("google", "gemini-2.5-flash", 3000, 1500, 0, 1200),
]


@pytest.fixture
def prices(session_factory: async_sessionmaker[AsyncSession]) -> PriceStore:
    return PriceStore(session_factory)


async def _run(store: PostgresStore, actor: str = "alice") -> uuid.UUID:
    return (await store.save_run(RunCreate(actor=actor))).id


def _call(
    run_id: uuid.UUID, model: str, provider: str | None = "openai", **kw: int
) -> LLMCallCreate:
    return LLMCallCreate(run_id=run_id, provider=provider, model=model, **kw)


@pytest.mark.parametrize(("provider", "model", "prompt", "cached", "write", "out"), BUILTIN_CASES)
async def test_builtin_cost_equals_genai_prices(
    store: PostgresStore, provider: str, model: str, prompt: int, cached: int, write: int, out: int
) -> None:
    run_id = await _run(store)
    call = await store.save_llm_call(
        LLMCallCreate(
            run_id=run_id,
            provider=provider,
            model=model,
            prompt_tokens=prompt,
            cached_tokens=cached,
            cache_write_tokens=write,
            completion_tokens=out,
        )
    )
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=prompt,
            cache_read_tokens=cached,
            cache_write_tokens=write,
            output_tokens=out,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=call.created_at,
    )
    assert call.cost_usd == expected.total_price
    assert expected.total_price > 0
    assert call.cost_source == "table"
    assert call.price_id is None
    assert call.price_ref == (
        f"genai-prices {genai_prices.__version__}: {expected.provider.id}/{expected.model.id}"
    )
    # What is read back later is the same exact number.
    [stored] = await store.get_llm_calls(run_id)
    assert stored.cost_usd == expected.total_price


async def test_cached_tokens_cost_less_than_uncached(store: PostgresStore) -> None:
    run_id = await _run(store)
    cold = await store.save_llm_call(_call(run_id, "gpt-4o", prompt_tokens=10_000))
    warm = await store.save_llm_call(
        _call(run_id, "gpt-4o", prompt_tokens=10_000, cached_tokens=10_000)
    )
    assert cold.cost_usd is not None
    assert warm.cost_usd is not None
    assert warm.cost_usd < cold.cost_usd


async def test_client_cost_is_kept_and_unknown_model_has_none(store: PostgresStore) -> None:
    run_id = await _run(store)
    sent = await store.save_llm_call(
        LLMCallCreate(run_id=run_id, model="gpt-4o", prompt_tokens=10, cost_usd=Decimal("0.5"))
    )
    assert (sent.cost_usd, sent.cost_source, sent.price_ref) == (Decimal("0.5"), "client", None)
    unknown = await store.save_llm_call(_call(run_id, "no-such-model-xyz", prompt_tokens=10))
    assert (unknown.cost_usd, unknown.cost_source, unknown.price_ref) == (None, None, None)
    nameless = await store.save_llm_call(LLMCallCreate(run_id=run_id, prompt_tokens=10))
    assert nameless.cost_source is None


def test_token_parts_follow_opentelemetry() -> None:
    run_id = uuid.uuid4()
    with pytest.raises(ValidationError, match="cached_tokens"):
        LLMCallCreate(run_id=run_id, prompt_tokens=10, cached_tokens=8, cache_write_tokens=3)
    with pytest.raises(ValidationError, match="reasoning_tokens"):
        LLMCallCreate(run_id=run_id, completion_tokens=10, reasoning_tokens=11)
    ok = LLMCallCreate(run_id=run_id, prompt_tokens=10, cached_tokens=7, cache_write_tokens=3)
    assert ok.cached_tokens == 7


async def test_user_price_wins_from_its_start(store: PostgresStore, prices: PriceStore) -> None:
    run_id = await _run(store)
    future = datetime.now(UTC) + timedelta(days=1)
    await prices.set_price(
        ModelPriceCreate(model_pattern="gpt-4o", starts_at=future, input_mtok=1, output_mtok=1),
        actor="alice",
    )
    before = await store.save_llm_call(_call(run_id, "gpt-4o", prompt_tokens=1_000_000))
    assert before.price_ref is not None
    assert before.price_ref.startswith("genai-prices")

    past = datetime.now(UTC) - timedelta(days=1)
    price = await prices.set_price(
        ModelPriceCreate(
            provider="openai",
            model_pattern="gpt-4o",
            starts_at=past,
            input_mtok=Decimal("3"),
            cached_input_mtok=Decimal("0.3"),
            output_mtok=Decimal("12"),
        ),
        actor="alice",
    )
    call = await store.save_llm_call(
        _call(run_id, "gpt-4o", prompt_tokens=1000, cached_tokens=400, completion_tokens=100)
    )
    # 600 uncached x $3 + 400 cached x $0.30 + 100 output x $12, per million tokens.
    assert call.cost_usd == Decimal("0.00312")
    assert (call.cost_source, call.price_id) == ("table", price.id)
    assert call.price_ref is not None
    assert str(price.id) in call.price_ref

    # Another actor does not get alice's price.
    other = await store.save_llm_call(
        _call(await _run(store, "bob"), "gpt-4o", prompt_tokens=1000, completion_tokens=100)
    )
    assert other.price_id is None


async def test_precedence_actor_then_provider_then_specific_pattern(
    store: PostgresStore, prices: PriceStore
) -> None:
    run_id = await _run(store)
    start = datetime.now(UTC) - timedelta(hours=1)

    async def price(actor: str | None, provider: str | None, pattern: str, usd: int) -> None:
        await prices.set_price(
            ModelPriceCreate(
                provider=provider,
                model_pattern=pattern,
                starts_at=start,
                input_mtok=usd,
                output_mtok=usd,
            ),
            actor=actor,
        )

    async def cost(model: str, provider: str | None = "acme") -> Decimal | None:
        call = await store.save_llm_call(_call(run_id, model, provider, prompt_tokens=1_000_000))
        return call.cost_usd

    await price(None, None, "*", 1)
    assert await cost("anything") == 1
    await price(None, None, "acme-*", 2)
    assert await cost("acme-large") == 2
    await price(None, None, "acme-large", 3)
    assert await cost("acme-large") == 3
    assert await cost("acme-small") == 2
    await price(None, "acme", "*", 4)
    assert await cost("acme-large") == 4
    assert await cost("acme-large", provider="other") == 3
    await price("alice", None, "*", 5)
    assert await cost("acme-large") == 5
    # Wildcards are `*` only: LIKE's own % and _ are literal.
    await price("alice", None, "a_c%", 6)
    assert await cost("abc-large") == 5
    assert await cost("a_c%") == 6


async def test_a_batch_is_priced_per_run_actor_provider_and_model(
    store: PostgresStore, prices: PriceStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """price_new_calls (what OTLP exports use) prices each call of a batch as save_llm_call
    would alone: each run's own actor, provider and model, null providers included."""
    alice_run, bob_run = await _run(store, "alice"), await _run(store, "bob")
    start = datetime.now(UTC) - timedelta(hours=1)
    for actor, provider, usd in (("alice", None, 5), ("bob", None, 7), ("bob", "acme", 9)):
        await prices.set_price(
            ModelPriceCreate(
                provider=provider,
                model_pattern="acme-*",
                starts_at=start,
                input_mtok=usd,
                output_mtok=usd,
            ),
            actor=actor,
        )
    million = {"prompt_tokens": 1_000_000}
    batch = [
        (alice_run, _call(alice_run, "acme-1", "acme", **million)),
        (bob_run, _call(bob_run, "acme-1", "acme", **million)),
        (bob_run, _call(bob_run, "acme-1", None, **million)),
        (alice_run, _call(alice_run, "gpt-4o", "openai", **million)),
        (alice_run, _call(alice_run, "mystery", "acme", **million)),
        (bob_run, LLMCallCreate(run_id=bob_run, model="acme-1", cost_usd=Decimal("0.1"))),
        (bob_run, LLMCallCreate(run_id=bob_run, prompt_tokens=5)),
    ]
    async with session_factory() as session:
        costs = await price_new_calls(session, batch)
    assert [(c.cost_usd, c.cost_source) for c in costs] == [
        (5, "table"),
        (9, "table"),
        (7, "table"),
        (Decimal("2.5"), "table"),  # genai-prices: gpt-4o input at $2.50 per million
        (None, None),
        (Decimal("0.1"), "client"),
        (None, None),
    ]
    # Each equals what save_llm_call stores for the same call alone.
    for (_, call), cost in zip(batch, costs, strict=True):
        alone = await store.save_llm_call(call)
        assert (alone.cost_usd, alone.cost_source, alone.price_ref) == (
            cost.cost_usd,
            cost.cost_source,
            cost.price_ref,
        )
    async with session_factory() as session:
        with pytest.raises(NotFoundError):
            await price_new_calls(session, [(uuid.uuid4(), _call(alice_run, "acme-1"))])


async def test_recompute_uses_the_price_in_force_at_each_call(
    store: PostgresStore, prices: PriceStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    run_id = await _run(store)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    calls: list[LLMCallRecord] = []
    for day in (0, 10, 20):
        call = await store.save_llm_call(
            _call(run_id, "gpt-4o", prompt_tokens=1_000_000, completion_tokens=0)
        )
        async with session_factory() as session, session.begin():
            await session.execute(
                update(LLMCall)
                .where(LLMCall.id == call.id)
                .values(created_at=base + timedelta(days=day))
            )
        calls.append(call)
    client = await store.save_llm_call(
        LLMCallCreate(run_id=run_id, model="gpt-4o", prompt_tokens=5, cost_usd=Decimal("9"))
    )
    # A reported cost without a source, as OTLP exports stored them before 'client'.
    reported = await store.save_llm_call(
        LLMCallCreate(run_id=run_id, model="gpt-4o", prompt_tokens=5, cost_usd=Decimal("8"))
    )
    async with session_factory() as session, session.begin():
        await session.execute(
            update(LLMCall).where(LLMCall.id == reported.id).values(cost_source=None)
        )
    builtin = [c.cost_usd for c in calls]

    first = await prices.set_price(
        ModelPriceCreate(
            model_pattern="gpt-4o", starts_at=base + timedelta(days=5), input_mtok=1, output_mtok=1
        ),
        actor="alice",
    )
    second = await prices.set_price(
        ModelPriceCreate(
            model_pattern="gpt-4o", starts_at=base + timedelta(days=15), input_mtok=7, output_mtok=7
        ),
        actor="alice",
    )
    # Setting prices rewrote nothing.
    assert [c.cost_usd for c in (await store.get_llm_calls(run_id))[:3]] == builtin

    seen: list[tuple[int, int]] = []
    changed = await prices.recompute(
        since=base, actor="alice", progress=lambda s, c: seen.append((s, c))
    )
    assert changed == 2
    assert seen[-1] == (3, 2)  # the client-priced call is not even looked at
    stored = {c.id: c for c in await store.get_llm_calls(run_id)}
    assert stored[calls[0].id].cost_usd == builtin[0]
    assert stored[calls[1].id].cost_usd == 1
    assert stored[calls[1].id].price_id == first.id
    assert stored[calls[2].id].cost_usd == 7
    assert stored[calls[2].id].price_id == second.id
    assert stored[client.id].cost_usd == 9
    assert stored[client.id].cost_source == "client"
    assert stored[reported.id].cost_usd == 8
    assert await prices.recompute(since=base, actor="alice") == 0

    # Deleting a price keeps the bill explainable: cost and price_ref stay.
    await prices.delete_price(second.id, actor="alice")
    kept = {c.id: c for c in await store.get_llm_calls(run_id)}[calls[2].id]
    assert kept.cost_usd == 7
    assert kept.price_id is None
    assert kept.price_ref == stored[calls[2].id].price_ref


async def test_price_rows_belong_to_their_actor(prices: PriceStore) -> None:
    start = datetime.now(UTC)
    mine = await prices.set_price(
        ModelPriceCreate(model_pattern="m", starts_at=start, input_mtok=1, output_mtok=2),
        actor="alice",
    )
    shared = await prices.set_price(
        ModelPriceCreate(model_pattern="m", starts_at=start, input_mtok=3, output_mtok=4),
        actor=None,
    )
    again = await prices.set_price(
        ModelPriceCreate(model_pattern="m", starts_at=start, input_mtok=5, output_mtok=6),
        actor="alice",
    )
    assert again.id == mine.id
    assert again.input_mtok == 5
    assert {p.id for p in await prices.list_prices(actor="alice")} == {mine.id, shared.id}
    assert [p.id for p in await prices.list_prices(actor="bob")] == [shared.id]
    with pytest.raises(ForbiddenError):
        await prices.delete_price(mine.id, actor="bob")
    with pytest.raises(ForbiddenError):
        await prices.delete_price(shared.id, actor="alice")
    with pytest.raises(NotFoundError):
        await prices.delete_price(uuid.uuid4(), actor="alice")
    await prices.delete_price(mine.id, actor="alice")
    assert [p.id for p in await prices.list_prices(actor="alice")] == [shared.id]


def test_prices_refuse_more_precision_than_stored() -> None:
    with pytest.raises(ValidationError, match="decimal places"):
        ModelPriceCreate(
            model_pattern="m",
            starts_at=datetime.now(UTC),
            input_mtok=Decimal("0.00000000001"),
            output_mtok=1,
        )
