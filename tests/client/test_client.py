"""chad_memory.client against the real app (in-process over ASGI) and a real database.

The sync client is exercised against a real `chad-memory serve` process in
tests/otlp/test_otlp_export.py; here the async one covers every route family.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from bench.common import free_port
from chad_memory import ApiKeyStore
from chad_memory.client import AsyncChadMemoryClient
from chad_memory.database import create_engine
from chad_memory.errors import (
    AuthenticationError,
    ConflictError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    ServiceUnreachableError,
)
from chad_memory.schemas import (
    ArtifactCreate,
    EmbeddingCreate,
    LLMCallCreate,
    MessageCreate,
    RunCreate,
    RunFilter,
    RunUpdate,
    SearchFilter,
    StepCreate,
    ThreadCreate,
    ThreadUpdate,
)
from chad_memory.settings import Settings


class CountingTransport(httpx.ASGITransport):
    """The real app's transport, counting the requests that reach it."""

    sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return await super().handle_async_request(request)


@pytest.fixture
async def clients(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[AsyncChadMemoryClient, AsyncChadMemoryClient]]:
    """Clients for alice and bob, each with its own key, on one app."""
    keys = ApiKeyStore(session_factory)
    alice = (await keys.create_key("alice")).secret
    bob = (await keys.create_key("bob")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            AsyncChadMemoryClient("http://t", alice, transport=transport) as a,
            AsyncChadMemoryClient("http://t", bob, transport=transport) as b,
        ):
            yield a, b


async def test_run_history_round_trip(
    clients: tuple[AsyncChadMemoryClient, AsyncChadMemoryClient],
) -> None:
    alice, bob = clients
    # run.actor is the library's owner field; over HTTP the key decides who owns the run.
    run = await alice.save_run(RunCreate(actor="someone-else", name="demo", trace_id="t-1"))
    assert run.actor == "alice"
    assert run.name == "demo"
    assert (await alice.get_run(run.id)) == run

    a, b, c = await alice.save_steps(
        [
            StepCreate(run_id=run.id, step_index=0, name="plan", input={"q": 1}),
            StepCreate(run_id=run.id, step_index=1, name="act"),
            StepCreate(run_id=run.id, step_index=2, name="answer", output="done"),
        ]
    )
    assert (a.name, b.name, c.name) == ("plan", "act", "answer")
    assert [s.id for s in await alice.get_steps(run.id)] == [a.id, b.id, c.id]
    one = await alice.save_step(StepCreate(run_id=run.id, step_index=3, parent_step_id=a.id))
    assert one.parent_step_id == a.id

    call = await alice.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            step_id=b.id,
            model="gpt-4o",
            prompt_tokens=1000,
            completion_tokens=500,
            cost_usd=Decimal("0.00036"),
        )
    )
    assert call.total_tokens == 1500
    assert call.cost_usd == Decimal("0.00036")
    assert await alice.get_llm_calls(run.id) == [call]
    artifact = await alice.save_artifact(ArtifactCreate(run_id=run.id, name="report.md"))
    assert await alice.get_artifacts(run.id) == [artifact]

    done = await alice.update_run(run.id, RunUpdate(status="succeeded", result={"ok": True}))
    assert done.status == "succeeded"
    assert done.completed_at is not None
    stats = await alice.get_run_stats(run.id)
    assert (stats.step_count, stats.llm_call_count, stats.total_tokens) == (4, 1, 1500)
    assert stats.cost_usd == Decimal("0.00036")

    page = await alice.list_runs(RunFilter(trace_id="t-1"))
    assert [r.id for r in page.items] == [run.id]
    assert await alice.count_runs(RunFilter(status="succeeded")) == 1
    assert await bob.count_runs() == 0

    # The library's exceptions, for the service's 4xx answers.
    with pytest.raises(ForbiddenError):
        await bob.get_run(run.id)
    with pytest.raises(ConflictError):
        await alice.update_run(run.id, RunUpdate(status="running"))
    with pytest.raises(InvalidInputError):
        await alice.save_step(StepCreate(run_id=run.id, step_index=9, parent_step_id=uuid.uuid4()))
    await alice.delete_run(run.id)
    with pytest.raises(NotFoundError):
        await alice.get_run(run.id)


async def test_idempotency_key_and_refused_ids(
    clients: tuple[AsyncChadMemoryClient, AsyncChadMemoryClient],
) -> None:
    alice, _ = clients
    first = await alice.save_run(RunCreate(actor="a", name="x", idempotency_key="k-1"))
    again = await alice.save_run(RunCreate(actor="a", name="x", idempotency_key="k-1"))
    assert again.id == first.id
    assert first.idempotency_key == "k-1"
    # The same key with another body: the service's 422, as the library's exception.
    with pytest.raises(InvalidInputError, match="different request body"):
        await alice.save_run(RunCreate(actor="a", name="y", idempotency_key="k-1"))
    # Ids are the service's to choose; a chosen one would be silently replaced.
    with pytest.raises(InvalidInputError, match="service assigns ids"):
        await alice.save_run(RunCreate(actor="a", id=uuid.uuid4()))
    # Steps of several runs in one call: one request per run, records in input order.
    other = await alice.save_run(RunCreate(actor="a"))
    steps = [
        StepCreate(run_id=run_id, step_index=i)
        for i, run_id in enumerate([first.id, other.id, first.id, other.id])
    ]
    saved = await alice.save_steps(steps)
    assert [(s.run_id, s.step_index) for s in saved] == [(s.run_id, s.step_index) for s in steps]


async def test_memory_and_threads(
    clients: tuple[AsyncChadMemoryClient, AsyncChadMemoryClient], engine: AsyncEngine
) -> None:
    alice, bob = clients
    dim = 1536
    vec = [0.0] * dim
    vec[0] = 1.0
    added = await alice.add_embeddings(
        [EmbeddingCreate(actor="x", source_id="doc-1", content="hello", embedding=vec)]
    )
    assert added[0].actor == "alice"
    hits = await alice.search(vec, k=3)
    assert [h.id for h in hits] == [added[0].id]
    assert hits[0].score == pytest.approx(1.0)
    assert await bob.search(vec, k=3) == []
    assert await alice.delete_by_source("doc-1") == 1

    thread = await alice.create_thread(ThreadCreate(agent_type="support"))
    assert thread.title == "New support conversation"
    renamed = await alice.update_thread(thread.id, ThreadUpdate(title="Refund"))
    assert renamed.title == "Refund"
    messages = await alice.add_messages(
        thread.id,
        [MessageCreate(role="user", content="hi"), MessageCreate(role="assistant", content="yo")],
    )
    page = await alice.list_messages(thread.id)
    assert [m.id for m in page.items] == [m.id for m in messages]
    assert await alice.count_messages(thread.id) == 2
    run = await alice.save_run(RunCreate(actor="a", thread_id=thread.id))
    assert [r.id for r in (await alice.list_thread_runs(thread.id)).items] == [run.id]
    assert [t.id for t in (await alice.list_threads()).items] == [thread.id]
    assert await alice.count_threads() == 1
    with pytest.raises(ForbiddenError):
        await bob.add_message(thread.id, MessageCreate(role="user", content="sneaky"))
    await alice.delete_message(messages[0].id)
    await alice.delete_thread(thread.id)
    with pytest.raises(NotFoundError):
        await alice.get_thread(thread.id)


async def test_unknown_key_is_authentication_error(engine: AsyncEngine) -> None:
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    async with (
        app.router.lifespan_context(app),
        AsyncChadMemoryClient(
            "http://t", "cm_not-a-key", transport=httpx.ASGITransport(app=app)
        ) as client,
    ):
        with pytest.raises(AuthenticationError):
            await client.list_runs()


async def test_503_is_retried_then_raised() -> None:
    """The real app over a database that is not there: every answer is 503 + Retry-After."""
    dead = create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    app = create_app(engine=dead, settings=Settings(auth_mode="api_key"))
    transport = CountingTransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            AsyncChadMemoryClient(
                "http://t", "cm_any", transport=transport, retries=2, backoff=0.01, max_wait=0.05
            ) as client,
        ):
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError):
                await client.list_runs()
            # Retry-After (1 s) was honoured up to max_wait; three attempts in all.
            assert transport.sent == 3
            assert time.monotonic() - started < 5
    finally:
        await dead.dispose()


async def test_unreachable_service_is_retried_then_raised() -> None:
    client = AsyncChadMemoryClient(f"http://127.0.0.1:{free_port()}", "k", retries=1, backoff=0.01)
    async with client:
        with pytest.raises(ServiceUnreachableError):
            await client.health()


async def test_batches_and_child_lists_span_several_requests(
    clients: tuple[AsyncChadMemoryClient, AsyncChadMemoryClient],
) -> None:
    """1,001 steps: two POSTs (the service takes 1,000 a request), two pages back."""
    alice, _ = clients
    run = await alice.save_run(RunCreate(actor="a"))
    saved = await alice.save_steps([StepCreate(run_id=run.id, step_index=i) for i in range(1001)])
    assert [s.step_index for s in saved] == list(range(1001))
    assert [s.id for s in await alice.get_steps(run.id)] == [s.id for s in saved]


async def test_text_and_hybrid_search(
    clients: tuple[AsyncChadMemoryClient, AsyncChadMemoryClient],
) -> None:
    alice, bob = clients
    vec = [0.0] * 1536
    vec[0] = 1.0
    [memory] = await alice.add_embeddings(
        [EmbeddingCreate(actor="x", namespace="facts", content="account ACME-77", embedding=vec)]
    )
    run = await alice.save_run(RunCreate(actor="x", name="lookup ACME-77", tags=["prod"]))
    page = await alice.search_text("ACME-77")
    assert {(h.kind, h.id) for h in page.items} == {("memory", memory.id), ("run", run.id)}
    only = await alice.search_text(
        "ACME-77", filters=SearchFilter(kinds=["run"], tag="prod", metadata={}), limit=1
    )
    assert [h.id for h in only.items] == [run.id]
    assert only.next_cursor is None
    assert (await bob.search_text("ACME-77")).items == []
    with pytest.raises(InvalidInputError):
        await alice.search_text("-nothing")

    [hit] = await alice.hybrid_search("ACME-77", vec, namespace="facts")
    assert (hit.id, hit.keyword_rank, hit.vector_rank) == (memory.id, 1, 1)
    [words] = await alice.hybrid_search("acme-77")
    assert (words.keyword_rank, words.vector_rank) == (1, None)
