"""The store methods the dashboard added: run totals for a list page, embeddings listed by
namespace and source, "more like this", and a key looked up by id."""

from __future__ import annotations

import os
import stat
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps.core_api.ui.session import SECRET_FILE, SessionCodec, session_secret
from chad_memory import (
    ApiKeyStore,
    EmbeddingCreate,
    ForbiddenError,
    InvalidInputError,
    LLMCallCreate,
    NotFoundError,
    PgVectorStore,
    PostgresStore,
    RunCreate,
    StepCreate,
)
from chad_memory.settings import Settings, get_settings


async def test_run_totals_sum_each_run_of_a_page(store: PostgresStore) -> None:
    a = await store.save_run(RunCreate(actor="alice", name="a"))
    b = await store.save_run(RunCreate(actor="alice", name="b"))
    await store.save_steps([StepCreate(run_id=a.id, step_index=i) for i in range(3)])
    for tokens, cost in ((100, "0.001"), (50, "0.0005")):
        await store.save_llm_call(
            LLMCallCreate(run_id=a.id, prompt_tokens=tokens, cost_usd=Decimal(cost))
        )
    totals = await store.get_run_totals([a.id, b.id, uuid.uuid4()])
    assert set(totals) == {a.id, b.id}
    assert (totals[a.id].step_count, totals[a.id].llm_call_count) == (3, 2)
    assert totals[a.id].total_tokens == 150
    assert totals[a.id].cost_usd == Decimal("0.0015")
    assert (totals[b.id].step_count, totals[b.id].total_tokens) == (0, 0)
    assert totals[b.id].cost_usd == Decimal(0)
    assert await store.get_run_totals([]) == {}
    with pytest.raises(InvalidInputError):
        await store.get_run_totals([uuid.uuid4() for _ in range(10_001)])


def _vector(i: int) -> list[float]:
    dim = get_settings().embedding_dim
    return [1.0 if k in (i, i + 1) else 0.01 for k in range(dim)]


async def test_list_embeddings_by_namespace_and_source(vector_store: PgVectorStore) -> None:
    items = [
        EmbeddingCreate(
            actor="alice",
            namespace="docs",
            source_id=f"d{i}",
            source_type="doc",
            content=f"doc {i}",
            embedding=_vector(i),
        )
        for i in range(5)
    ]
    items.append(
        EmbeddingCreate(actor="alice", namespace="chats", content="hi", embedding=_vector(9))
    )
    items.append(
        EmbeddingCreate(actor="bob", namespace="docs", content="bob's", embedding=_vector(3))
    )
    await vector_store.add_embeddings(items)

    page = await vector_store.list_embeddings("alice", namespace="docs", limit=3)
    assert len(page.items) == 3
    assert page.next_cursor is not None
    rest = await vector_store.list_embeddings(
        "alice", namespace="docs", limit=3, cursor=page.next_cursor
    )
    assert len(rest.items) == 2
    assert rest.next_cursor is None
    seen = {e.content for e in page.items + rest.items}
    assert seen == {f"doc {i}" for i in range(5)}
    only = await vector_store.list_embeddings("alice", source_id="d2")
    assert [e.content for e in only.items] == ["doc 2"]
    assert (await vector_store.list_embeddings("alice", source_type="nope")).items == []
    counts = await vector_store.count_by_namespace("alice")
    assert [(c.namespace, c.count) for c in counts] == [("chats", 1), ("docs", 5)]
    with pytest.raises(InvalidInputError):
        await vector_store.list_embeddings("alice", cursor="garbage")
    with pytest.raises(InvalidInputError):
        await vector_store.list_embeddings("alice", limit=0)


async def test_more_like_this_searches_from_a_stored_vector(vector_store: PgVectorStore) -> None:
    stored = await vector_store.add_embeddings(
        [
            EmbeddingCreate(
                actor="alice",
                namespace="docs",
                content=f"doc {i}",
                embedding=_vector(i * 2 if i < 3 else 40 + i),
            )
            for i in range(5)
        ]
        + [EmbeddingCreate(actor="alice", namespace="other", content="x", embedding=_vector(0))]
        + [EmbeddingCreate(actor="bob", namespace="docs", content="bob", embedding=_vector(0))]
    )
    seed, hits = await vector_store.more_like(stored[0].id, actor="alice", k=3)
    assert seed.id == stored[0].id
    assert len(hits) == 3
    assert stored[0].id not in {h.id for h in hits}
    assert {h.content for h in hits} <= {f"doc {i}" for i in range(1, 5)}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    _, everywhere = await vector_store.more_like(stored[0].id, actor="alice", same_namespace=False)
    assert everywhere[0].content == "x"
    assert "bob" not in {h.content for h in everywhere}
    with pytest.raises(ForbiddenError):
        await vector_store.more_like(stored[-1].id, actor="alice")
    with pytest.raises(NotFoundError):
        await vector_store.more_like(uuid.uuid4(), actor="alice")


async def test_live_key_by_id(session_factory: async_sessionmaker[AsyncSession]) -> None:
    keys = ApiKeyStore(session_factory)
    created = await keys.create_key("alice")
    live = await keys.get_live_key(created.key.id)
    assert live is not None
    assert live.actor == "alice"
    await keys.revoke_key(created.key.id)
    assert await keys.get_live_key(created.key.id) is None
    assert await keys.get_live_key(uuid.uuid4()) is None


def test_session_secret_is_made_once_beside_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(chad_data_dir=tmp_path / "pgdata")
    first = session_secret(settings)
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 48
    assert session_secret(settings) == first
    # Not inside the data directory: initdb wants it empty.
    assert not (tmp_path / "pgdata").exists()
    given = Settings(ui_session_secret=SecretStr("x" * 20), chad_data_dir=tmp_path / "other")
    assert session_secret(given) == b"x" * 20
    with pytest.raises(ValueError, match="at least 16"):
        session_secret(Settings(ui_session_secret=SecretStr("short")))


def test_session_cookies_are_signed_and_expire() -> None:
    codec = SessionCodec(b"k" * 32, max_age_s=60)
    session = codec.new("alice", uuid.uuid4())
    cookie = codec.dump(session)
    assert codec.load(cookie) == session
    assert SessionCodec(b"j" * 32, max_age_s=60).load(cookie) is None
    assert codec.load(cookie + "x") is None
    assert codec.load("no-dot") is None
    assert codec.load(None) is None
    expired = SessionCodec(b"k" * 32, max_age_s=-1)
    assert codec.load(expired.dump(expired.new("alice"))) is None
    assert codec.csrf_ok(session, codec.csrf_token(session))
    assert not codec.csrf_ok(codec.new("alice"), codec.csrf_token(session))
    assert not codec.csrf_ok(session, None)
