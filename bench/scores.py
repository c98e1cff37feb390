"""Runs filtered by a score, and compare of two experiments.

    .venv/bin/python -m bench.scores --runs 200000 --items 1000

Filter: N runs of one actor, each with one run-level `helpfulness` score (uniform in
[0, 1)), loaded with INSERT ... SELECT generate_series. The first page (50, with its
capped total, as GET /runs answers) of `list_run_summaries` filtered by
`helpfulness<0.5` (half the runs), `helpfulness<0.001` (0.1%) and `helpfulness>=0.999`,
each beside the unfiltered first page measured in the same run.

Compare: a dataset of M items, two experiments with one run per item (tagged by run
metadata), an LLM call with a cost and a score per run; `ExperimentStore.compare` of
the two, beside reading the same rows with hand-written SQL over the bare driver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from bench.common import (
    create_database,
    drop_database,
    load_line,
    raw_connection,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)


async def filter_bench(n_runs: int) -> list[list[Any]]:
    from chad_memory import PostgresStore, RunFilter
    from chad_memory.database import create_engine, get_session_factory

    db = await create_database("bench_scores")
    conn = await raw_connection(db)
    t0 = time.perf_counter()
    await conn.execute(
        "INSERT INTO runs (id, actor, name, status, created_at, updated_at) "
        "SELECT gen_random_uuid(), 'alice', 'run ' || g, 'succeeded', "
        "now() - g * interval '1 second', now() FROM generate_series(1, $1) g",
        n_runs,
    )
    await conn.execute(
        "INSERT INTO scores (id, actor, target_type, run_id, name, data_type, value, source) "
        "SELECT gen_random_uuid(), 'alice', 'run', id, 'helpfulness', 'numeric', random(), "
        "'evaluator' FROM runs"
    )
    await conn.execute("VACUUM ANALYZE runs")
    await conn.execute("VACUUM ANALYZE scores")
    say(f"filter: {n_runs:,} runs and scores loaded in {time.perf_counter() - t0:.0f} s")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))

    async def page(f: RunFilter) -> Any:
        return await store.list_run_summaries(f, limit=50, with_total=True, total_cap=10_000)

    base = RunFilter(actor="alice")
    unfiltered, _, _ = await timed_passes(lambda i: page(base), 30)
    rows: list[list[Any]] = [["unfiltered", n_runs, unfiltered, 1.0]]
    for condition in ("helpfulness<0.5", "helpfulness<0.001", "helpfulness>=0.999"):
        f = RunFilter(actor="alice", score=condition)

        async def filtered(i: int, f: RunFilter = f) -> Any:
            return await page(f)

        p50, _, result = await timed_passes(filtered, 30)
        matches = await conn.fetchval(
            "SELECT count(*) FROM scores WHERE name = 'helpfulness' AND value "
            + condition.removeprefix("helpfulness")
        )
        assert len(result[-1].items) == min(50, matches)
        rows.append([f"score={condition}", matches, p50, p50 / unfiltered])
        say(f"{condition}: p50 {p50:.2f} ms vs unfiltered {unfiltered:.2f}")
    await conn.close()
    await engine.dispose()
    await drop_database(db)
    return rows


COMPARE_SQL = """
SELECT r.id, r.metadata ->> 'chad.experiment_id', r.metadata ->> 'chad.dataset_item_id',
       r.result, r.status, r.started_at, r.completed_at,
       (SELECT sum(cost_usd) FROM llm_calls c WHERE c.run_id = r.id),
       (SELECT jsonb_object_agg(name, value) FROM scores s WHERE s.run_id = r.id)
FROM runs r WHERE r.actor = $1 AND (r.metadata @> $2::jsonb OR r.metadata @> $3::jsonb)
"""


async def compare_bench(n_items: int) -> list[list[Any]]:
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.schemas.datasets import DatasetCreate, DatasetItemCreate, ExperimentCreate
    from chad_memory.stores import DatasetStore, ExperimentStore

    db = await create_database("bench_compare")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    factory = get_session_factory(engine)
    datasets, experiments = DatasetStore(factory), ExperimentStore(factory)
    ds = await datasets.create_dataset(DatasetCreate(name="bench"), actor="alice")
    change = await datasets.add_items(
        ds.id,
        [DatasetItemCreate(input={"q": i}, expected_output=i) for i in range(n_items)],
        actor="alice",
    )
    ids = []
    conn = await raw_connection(db)
    for name in ("baseline", "candidate"):
        e = await experiments.create_experiment(
            ExperimentCreate(name=name, dataset_id=ds.id), actor="alice"
        )
        ids.append(e.id)
        for item in change.items:
            run_id = uuid.uuid4()
            meta = json.dumps(
                {"chad.experiment_id": str(e.id), "chad.dataset_item_id": str(item.item_id)}
            )
            await conn.execute(
                "INSERT INTO runs (id, actor, status, result, metadata, started_at, "
                "completed_at) VALUES ($1, 'alice', 'succeeded', '\"out\"', $2::jsonb, now(), "
                "now() + interval '1 second')",
                run_id,
                meta,
            )
            await conn.execute(
                "INSERT INTO llm_calls (id, run_id, actor, model, cost_usd) "
                "VALUES (gen_random_uuid(), $1, 'alice', 'm', 0.001)",
                run_id,
            )
            await conn.execute(
                "INSERT INTO scores (id, actor, target_type, run_id, name, data_type, value, "
                "source) VALUES (gen_random_uuid(), 'alice', 'run', $1, 'correct', 'numeric', "
                "random(), 'evaluator')",
                run_id,
            )
    await conn.execute("VACUUM ANALYZE")
    say(f"compare: {n_items:,} items x 2 experiments loaded")

    p50, p95, result = await timed_passes(lambda i: experiments.compare(ids, actor="alice"), 20)
    assert len(result[-1].items) == n_items
    assert result[-1].experiments[1].runs == n_items
    tags = [json.dumps({"chad.experiment_id": str(i)}) for i in ids]

    async def raw(i: int) -> Any:
        return await conn.fetch(COMPARE_SQL, "alice", *tags)

    raw_p50, _, _ = await timed_passes(raw, 20)
    await conn.close()
    await engine.dispose()
    await drop_database(db)
    return [[f"compare 2 x {n_items:,} items", p50, p95, raw_p50, p50 / raw_p50]]


async def main(n_runs: int, n_items: int) -> None:
    say(f"load: {load_line()}")
    compare_rows = await compare_bench(n_items)
    print("### Compare of two experiments")
    print()
    print(
        table(["what", "p50 ms", "p95 ms", "bare-driver rows p50 ms", "ours / bare"], compare_rows)
    )
    print()
    if n_runs == 0:
        return
    filter_rows = await filter_bench(n_runs)
    print(f"### First page (50, with total) of run summaries at {n_runs:,} runs and scores")
    print()
    print(table(["filter", "matches", "p50 ms", "vs unfiltered"], filter_rows))
    say(f"load: {load_line()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.items))
