"""SearchStore on the real database: every kind, every language class, the syntax, the
actor boundary, filters, snippets and paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import InvalidInputError, PostgresStore, RunCreate, SearchFilter, StepCreate
from chad_memory.stores.search_kinds import KINDS
from tests.search.conftest import World


async def found(world: World, q: str, **filters: object) -> set[tuple[str, object]]:
    page = await world.search.search(q, actor="alice", filters=SearchFilter(**filters))
    return {(hit.kind, hit.id) for hit in page.items}


async def test_each_kind_is_found_by_its_own_words(world: World) -> None:
    assert await found(world, "triage") == {("run", world.run)}
    assert await found(world, "get_weather") == {("step", world.step)}
    assert await found(world, "storniert") == {("llm_call", world.call)}
    assert await found(world, "kettle") == {("thread", world.thread)}
    assert await found(world, "colis") == {("message", world.message)}
    assert await found(world, "invoices") == {("memory", world.memory)}


async def test_english_is_stemmed(world: World) -> None:
    # "refunded" in an LLM response, "Refund" in a thread title: one stem.
    assert await found(world, "refunding") == {("llm_call", world.call), ("thread", world.thread)}
    assert await found(world, "invoice") == {("memory", world.memory)}


async def test_other_latin_languages_are_found_by_their_words(world: World) -> None:
    assert await found(world, "remboursée") == {("message", world.message)}
    assert await found(world, "arrivé") == {("message", world.message)}
    assert await found(world, "Lieferung") == {("llm_call", world.call)}


async def test_cjk_is_found_by_any_substring_of_two_or_more_characters(world: World) -> None:
    step = {("step", world.step)}
    assert await found(world, "天気予報") == step
    assert await found(world, "予報は晴") == step  # across what a word splitter would cut
    assert await found(world, "東京") == step
    assert await found(world, "晴れ") == step
    assert await found(world, "雨天") == set()  # not a substring, though near
    assert await found(world, "報天") == set()  # both characters present, not adjacent
    with pytest.raises(InvalidInputError, match="two characters"):
        await found(world, "晴")


async def test_identifiers_are_found_whole(world: World) -> None:
    assert await found(world, "order-4411") == {("run", world.run)}
    assert await found(world, "c-1029") == {("run", world.run)}
    assert await found(world, "4411") == {("run", world.run)}  # the number alone
    assert await found(world, "ACME-77") == {("memory", world.memory)}
    assert await found(world, "order-4412") == set()
    assert await found(world, "get_rain") == set()


async def test_prefixes(world: World) -> None:
    assert await found(world, "order-44*") == {("run", world.run)}
    assert await found(world, "get_wea*") == {("step", world.step)}
    assert await found(world, "tria*") == {("run", world.run)}
    assert await found(world, "zzz*") == set()


async def test_query_syntax(world: World) -> None:
    assert await found(world, '"broken kettle"') == {("thread", world.thread)}
    assert await found(world, '"kettle broken"') == set()  # a phrase keeps its order
    assert await found(world, "refund -kettle") == {("llm_call", world.call)}
    assert await found(world, 'refund -"broken kettle"') == {("llm_call", world.call)}
    assert await found(world, "kettle OR invoices") == {
        ("thread", world.thread),
        ("memory", world.memory),
    }
    assert await found(world, "kettle invoices") == set()  # both words, in one row
    # Operators typed as text stay text: nothing the user types is tsquery syntax.
    assert await found(world, "kettle & | ! <-> :*") == {("thread", world.thread)}
    assert await found(world, "'kettle'") == {("thread", world.thread)}


async def test_queries_without_words_are_refused(world: World) -> None:
    for q in ("", "   ", "-kettle", '""', "& | !", "x" * 501):
        with pytest.raises(InvalidInputError):
            await world.search.search(q, actor="alice")
    with pytest.raises(InvalidInputError, match="more than 16"):
        await world.search.search(" ".join(f"w{i}" for i in range(17)), actor="alice")


async def test_another_actors_rows_are_never_found(world: World) -> None:
    assert ("run", world.bob_run) not in await found(world, "order-4411")
    bob = await world.search.search("refund OR ACME-77 OR order-4411", actor="bob")
    assert {h.kind for h in bob.items} == {"run", "memory"}
    assert all(h.id != world.memory for h in bob.items)
    assert await world.search.search("kettle", actor="carol") == type(bob)(items=[])


async def test_hits_say_where_they_belong_with_a_highlighted_snippet(world: World) -> None:
    page = await world.search.search("get_weather OR storniert OR colis", actor="alice")
    by_kind = {hit.kind: hit for hit in page.items}
    step, call, message = by_kind["step"], by_kind["llm_call"], by_kind["message"]
    assert (step.run_id, step.thread_id, step.title) == (world.run, world.thread, "get_weather")
    assert call.run_id == world.run
    assert call.title == "gpt-test"
    assert message.thread_id == world.thread
    assert message.title == "user"
    assert [call.snippet[s:e] for s, e in call.highlights] == ["storniert"]
    assert "Die Lieferung wurde storniert" in call.snippet
    assert [step.snippet[s:e] for s, e in step.highlights] == ["get_weather"]
    cjk = (await world.search.search("天気予報", actor="alice")).items[0]
    assert [cjk.snippet[s:e] for s, e in cjk.highlights] == ["天気予報"]


async def test_filters_compose_and_keep_only_the_kinds_they_apply_to(world: World) -> None:
    everything = "refund OR get_weather OR colis OR invoices OR triage"
    assert {k for k, _ in await found(world, everything)} == set(KINDS)
    assert await found(world, everything, kinds=["thread", "memory"]) == {
        ("thread", world.thread),
        ("memory", world.memory),
    }
    assert await found(world, everything, status="succeeded") == {
        ("step", world.step),
        ("llm_call", world.call),
    }
    assert {k for k, _ in await found(world, everything, tag="prod")} == {"run", "step", "llm_call"}
    assert await found(world, everything, tag="staging") == set()
    assert await found(world, everything, metadata={"tool": True}) == {("step", world.step)}
    assert {k for k, _ in await found(world, everything, run_id=world.run)} == {
        "run",
        "step",
        "llm_call",
        "memory",
    }
    assert {k for k, _ in await found(world, everything, thread_id=world.thread)} == {
        "run",
        "step",
        "llm_call",
        "thread",
        "message",
    }
    assert await found(world, everything, namespace="facts") == {("memory", world.memory)}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await found(world, everything, created_after=future) == set()
    assert len(await found(world, everything, created_before=future)) == 6
    with pytest.raises(InvalidInputError, match="apply to none"):
        await found(world, everything, kinds=["thread"], namespace="facts")


async def test_pages_follow_each_other_without_gaps_or_repeats(
    store: PostgresStore, world: World
) -> None:
    run = await store.save_run(RunCreate(actor="alice", name="paging"))
    await store.save_steps(
        [StepCreate(run_id=run.id, step_index=i, output={"t": f"needle {i}"}) for i in range(25)]
    )
    seen: list[object] = []
    cursor = None
    for _ in range(5):
        page = await world.search.search("needle", actor="alice", limit=10, cursor=cursor)
        seen += [h.id for h in page.items]
        assert [h.created_at for h in page.items] == sorted(
            (h.created_at for h in page.items), reverse=True
        )
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25
    with pytest.raises(InvalidInputError, match="cursor"):
        await world.search.search("needle", actor="alice", cursor="forged.cursor")


async def test_a_row_is_searchable_as_soon_as_its_write_returns(
    store: PostgresStore, world: World
) -> None:
    run = await store.save_run(RunCreate(actor="alice", name="fresh"))
    await store.save_steps([StepCreate(run_id=run.id, step_index=0, output={"t": "zebra-42"})])
    assert {k for k, _ in await found(world, "zebra-42")} == {"step"}


async def test_large_payloads_are_indexed_up_to_their_documented_size(
    store: PostgresStore, world: World
) -> None:
    filler = "lorem " * 6000  # 36,000 characters: past the 32,768 kept per payload
    run = await store.save_run(
        RunCreate(actor="alice", name="big", result={"a": "early-word " + filler + " late-word"})
    )
    assert ("run", run.id) in await found(world, "early-word")
    assert ("run", run.id) not in await found(world, "late-word")


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_each_kind_reads_its_text_index(
    kind: str, world: World, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The query repeats the indexed expression exactly, so the index can serve it."""
    table = KINDS[kind].table
    matches = KINDS[kind].vector(table).op("@@")(func.to_tsquery(literal_column("'english'"), "x"))
    stmt = select(table.c.id).where(matches).compile(compile_kwargs={"literal_binds": True})
    async with session_factory() as session:
        await session.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN {stmt}")))
    assert f"Bitmap Index Scan on ix_{table.name}_search" in plan
