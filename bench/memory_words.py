"""Memory in words: what embedding text in the service costs beside sending vectors.

With a local OpenAI-compatible embedder that answers at once (tests/memory/fake_openai.py,
a real HTTP server on 127.0.0.1), both through the service in-process (httpx over ASGI):

- ingest: `POST /memory` of N texts in batches of 100 without vectors (the service
  embeds them) against the same rows with precomputed vectors (same-run baseline);
- search: `query` text p50 against the embedder's own p50 plus the `embedding` search p50.

Run: `.venv/bin/python -m bench.memory_words` (N=1000 by default; REPEATS passes).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from apps.core_api.main import create_app
from bench.common import (
    REPEATS,
    create_database,
    drop_database,
    load_line,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)
from chad_memory import ApiKeyStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.embedders.openai import OpenAIEmbedder
from chad_memory.settings import Settings
from tests.memory.fake_openai import FakeOpenAI, word_vector

N = 1000
BATCH = 100
QUERIES = 50
WORDS = [
    *("tea", "coffee", "lisbon", "paris", "agent", "tool", "memory", "run", "step", "cat"),
    *("dog", "market", "price", "green", "red", "blue", "fast", "slow", "plan", "goal"),
    *("user", "prefers", "lives", "likes", "works"),
]


def sentence(i: int, salt: str) -> str:
    picks = [WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(8)]
    return f"{salt} {i} " + " ".join(picks)


async def main() -> None:
    db = await create_database("memwords")
    fake = FakeOpenAI(dim=Settings().embedding_dim).start()
    settings = Settings(
        auth_mode="api_key",
        embedder="openai",
        embedder_base_url=fake.url,
        embedder_model="fake-embed",
        embedder_batch_size=BATCH,
    )
    engine = create_engine(sqlalchemy_url(db), settings)
    try:
        key = (await ApiKeyStore(get_session_factory(engine)).create_key("bench")).secret
        headers = {"Authorization": f"Bearer {key}"}
        app = create_app(engine=engine, settings=settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://b", timeout=120
            ) as c,
        ):
            await report(c, headers, fake, settings)
    finally:
        fake.stop()
        await engine.dispose()
        await drop_database(db)


async def ingest(c: httpx.AsyncClient, headers: dict[str, str], items: list[Any]) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(items), BATCH):
        r = await c.post("/memory", json={"items": items[start : start + BATCH]}, headers=headers)
        r.raise_for_status()
    return len(items) / (time.perf_counter() - t0)


async def report(
    c: httpx.AsyncClient, headers: dict[str, str], fake: FakeOpenAI, settings: Settings
) -> None:
    dim = settings.embedding_dim
    text_rates: list[float] = []
    vector_rates: list[float] = []
    for rep in range(REPEATS):
        # Fresh texts each pass (a text already stored would only refresh its row).
        texts = [sentence(i, f"t{rep}") for i in range(N)]
        stored = [sentence(i, f"v{rep}") for i in range(N)]
        vectors = [{"content": t, "embedding": word_vector(t, dim)} for t in stored]
        vector_rates.append(await ingest(c, headers, vectors))
        text_rates.append(await ingest(c, headers, [{"content": t} for t in texts]))
        say(f"pass {rep}: text {text_rates[-1]:,.0f} rows/s, vectors {vector_rates[-1]:,.0f}")
    text_rate, vector_rate = statistics.median(text_rates), statistics.median(vector_rates)

    queries = [sentence(i * 3, "q") for i in range(QUERIES)]
    embedder = OpenAIEmbedder(base_url=fake.url, model="fake-embed")
    query_vectors = [await embedder.embed_query(q) for q in queries]

    async def embed(i: int) -> Any:
        return await embedder.embed_query(queries[i])

    async def by_vector(i: int) -> Any:
        body = {"embedding": query_vectors[i], "k": 10}
        return (await c.post("/memory/search", json=body, headers=headers)).raise_for_status()

    async def by_query(i: int) -> Any:
        body = {"query": queries[i], "k": 10}
        return (await c.post("/memory/search", json=body, headers=headers)).raise_for_status()

    embed_p50, _, _ = await timed_passes(embed, QUERIES)
    vector_p50, _, _ = await timed_passes(by_vector, QUERIES)
    query_p50, _, _ = await timed_passes(by_query, QUERIES)
    await embedder.aclose()
    print(f"load: {load_line()}")
    print(f"rows: {REPEATS * 2 * N:,} x {dim}-d, batches of {BATCH}, {REPEATS} passes (median)")
    print(
        table(
            ["POST /memory", "rows/s", "ratio"],
            [
                ["precomputed vectors (baseline)", vector_rate, 1.0],
                ["text, embedded by the service", text_rate, text_rate / vector_rate],
            ],
        )
    )
    budget = embed_p50 + vector_p50 + 5
    print(
        table(
            ["search p50", "ms"],
            [
                ["embedder alone (embed_query)", embed_p50],
                ["`embedding` search (baseline)", vector_p50],
                ["`query` text search", query_p50],
                ["target: embedder + vector + 5 ms", budget],
            ],
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
