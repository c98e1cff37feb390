"""What calibrating an index costs, beside building it, and what the chosen setting gives.

Usage: python -m bench.calibration_cost [--size N] [--hard] [--method ivfflat|hnsw]
       [--target R] [--before-src PATH]

One table of clustered vectors (bench/datasets.py; `--hard`: 4x the clusters, noise 0.5,
as in bench/vectors.py), one index built by the library (`rebuild_index`), then
`calibrate()` run on that same index by this checkout and, with `--before-src PATH` (a
checkout of an older version, e.g. `git archive main | tar -x -C /tmp/before`), by that
version, each in its own process, one after the other, so both see the same index, table
and machine. For each: seconds, the setting chosen, the recall calibration measured and
the recall of held-out queries at that setting (raw asyncpg, exact top-10 from NumPy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    create_database,
    drop_database,
    load_line,
    raw_connection,
    say,
    sqlalchemy_url,
    table,
)
from bench.datasets import Matrix, clustered_vectors, exact_top_k, recall_at_k

K = 10
ROOT = Path(__file__).resolve().parent.parent

# Run in a child process with the source tree to measure first on sys.path.
_CALIBRATE = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import chad_memory
from chad_memory.database import create_engine
from chad_memory.vector_calibration import calibrate

async def main():
    engine = create_engine(sys.argv[2], pool_size=1)
    t0 = time.perf_counter()
    info = await calibrate(engine, target=float(sys.argv[3]))
    seconds = time.perf_counter() - t0
    await engine.dispose()
    c = info.calibration
    print(json.dumps({"source": chad_memory.__file__, "seconds": seconds,
                      "setting": c.setting, "value": c.value, "recall": c.recall}))

asyncio.run(main())
"""


def _calibrate_with(src: Path, url: str, target: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CALIBRATE, str(src), url, str(target)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["source"].startswith(str(src)):
        raise SystemExit(f"{src}: imported chad_memory from {result['source']}")
    return result


async def _held_out(db: str, queries: Matrix, truth: np.ndarray, setting: str, value: int) -> float:
    conn = await raw_connection(db)
    found: list[list[int]] = []
    try:
        for q in queries:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL {setting} = {int(value)}")
                rows = await conn.fetch(
                    f"SELECT content FROM embeddings ORDER BY embedding <=> $1 LIMIT {K}", q
                )
            found.append([int(r[0]) for r in rows])
    finally:
        await conn.close()
    return recall_at_k(found, truth)


async def main(
    size: int, hard: bool, method: str, target: float, before: Path | None, queries: int
) -> None:
    from chad_memory.database import create_engine
    from chad_memory.settings import get_settings
    from chad_memory.vector_index import rebuild_index

    dim = get_settings().embedding_dim
    say(f"load: {load_line()}")
    shape: dict[str, Any] = (
        {"clusters": 4 * max(8, int(np.sqrt(size) / 2)), "noise": 0.5} if hard else {}
    )
    data = clustered_vectors(size, dim, queries=queries, seed=42, **shape)
    truth = exact_top_k(data.base, data.queries, K)
    db = await create_database("bench_calcost")
    rows: list[list[Any]] = []
    try:
        conn = await raw_connection(db)
        for start in range(0, size, 10_000):
            await conn.copy_records_to_table(
                "embeddings",
                records=[
                    (uuid.uuid4(), "alice", "default", str(i), data.base[i], "{}")
                    for i in range(start, min(size, start + 10_000))
                ],
                columns=["id", "actor", "namespace", "content", "embedding", "metadata"],
            )
        await conn.close()
        engine = create_engine(sqlalchemy_url(db), pool_size=2)
        t0 = time.perf_counter()
        info = await rebuild_index(engine, method=method)  # type: ignore[arg-type]
        build_s = time.perf_counter() - t0
        await engine.dispose()
        label = f"{method} lists={info.lists}" if method == "ivfflat" else f"{method} m=16"
        say(f"{label} built in {build_s:.1f} s")
        sources = [("this checkout", ROOT)] + ([("before", before)] if before else [])
        for name, src in sources:
            got = _calibrate_with(src, sqlalchemy_url(db), target)
            held = await _held_out(db, data.queries, truth, got["setting"], got["value"])
            say(f"{name}: {got} held-out {held:.3f}")
            rows.append(
                [
                    name,
                    build_s,
                    got["seconds"],
                    f"{got['setting']}={got['value']}",
                    got["recall"],
                    held,
                ]
            )
    finally:
        await drop_database(db)
    kind = "harder clustered (4x clusters, noise 0.5)" if hard else "clustered"
    print(f"### Calibration cost, {size:,} x {dim} {kind} vectors, {label}, target {target}")
    print()
    print(
        table(
            [
                "calibrated by",
                "build s",
                "calibration s",
                "setting chosen",
                "calibration recall",
                f"held-out recall ({queries} queries)",
            ],
            rows,
        )
    )
    print()
    print(f"Load when the script finished: `{load_line()}`")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=int(os.environ.get("SIZE", "100000")))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hard", action="store_true", help="4x the clusters, more noise")
    parser.add_argument("--method", choices=("ivfflat", "hnsw"), default="ivfflat")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--before-src", type=Path, default=None)
    args = parser.parse_args()
    before = args.before_src.resolve() if args.before_src else None
    asyncio.run(main(args.size, args.hard, args.method, args.target, before, args.queries))
