"""The dashboard's memory in words: a run page lists the memories it read and wrote, a
memory's page shows who wrote and read it and its versions, and the memory list filters
by the time a version was valid."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import EmbeddingCreate, PgVectorStore
from chad_memory.settings import get_settings
from tests.ui.conftest import Dashboard

DIM = get_settings().embedding_dim


def unit(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


async def test_memory_provenance_and_history_pages(
    dash: Dashboard, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    memory = PgVectorStore(session_factory)
    run = dash.sample.support_run
    (old,) = await memory.add_embeddings(
        [
            EmbeddingCreate(
                actor="alice",
                content="ships from Lisbon",
                key="warehouse",
                embedding=unit(1),
                run_id=run,
            )
        ]
    )
    await asyncio.sleep(0.05)
    between = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
    await asyncio.sleep(0.05)
    (new,) = await memory.add_embeddings(
        [
            EmbeddingCreate(
                actor="alice",
                content="ships from Porto",
                key="warehouse",
                embedding=unit(2),
                run_id=run,
            )
        ]
    )
    await memory.search(unit(2), k=1, actor="alice", run_id=run)
    await memory.close()

    await dash.sign_in(dash.sample.alice_key)
    run_page = await dash.client.get(f"/ui/runs/{run}")
    assert run_page.status_code == 200
    read_part = run_page.text.split("Memories read", 1)[1].split("Memories written", 1)[0]
    assert "ships from Porto" in read_part
    assert "ships from Lisbon" not in read_part
    written_part = run_page.text.split("Memories written", 1)[1]
    assert "ships from Lisbon" in written_part
    assert "ships from Porto" in written_part

    page = await dash.client.get(f"/ui/memory/{new.id}")
    assert page.status_code == 200
    assert f'href="/ui/runs/{run}"' in page.text  # written by
    readers = page.text.split("Read by runs", 1)[1].split("History of key", 1)[0]
    assert str(run) in readers
    history = page.text.split("History of key", 1)[1]
    assert history.index("ships from Lisbon") < history.index("ships from Porto")
    assert "current" in history

    then = await dash.client.get("/ui/memory", params={"valid_at": between})
    assert then.status_code == 200
    assert "ships from Lisbon" in then.text
    assert "ships from Porto" not in then.text
    bad = await dash.client.get("/ui/memory", params={"valid_at": "not a time"})
    assert bad.status_code == 422
    assert old.id != new.id
