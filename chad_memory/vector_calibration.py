"""Calibrating a vector index on its own data, and keeping it calibrated as rows arrive.

A formula for `ivfflat.probes` knows the list count, not the data: on real text it gave
recall 0.89 where synthetic clusters gave 0.99. So after every build the index measures
itself: queries made from a sample of stored vectors, their exact top-k from one pass over
the table in NumPy, and the index searched at increasing probes / ef_search (doubling,
then bisecting) until recall@k reaches the aim. The smallest such setting, measured on
every query, with the recall it measured, goes into the index's note
(chad_memory.vector_index), where every process's next search finds it. Most settings
tried are judged on part of the queries (`_Measure`), so the expensive ones are rarely
measured in full more than once.

Which queries, in thirds: a stored vector (its own row excluded) is easier than a fresh
query, above all for HNSW, whose search walks straight to the query's own node; the
normalised midpoint of two random stored vectors lies between neighbourhoods and was
harder than a fresh query on the default synthetic set but easier on the harder one; a
stored vector pulled halfway towards another (NEAR_PULL) tracked held-out queries closely
on the harder set and was harder than them on the default one (BENCHMARKS.md,
"Calibration queries"). With halves of the first two, HNSW on the harder set calibrated
to held-out recall 0.947 < 0.95; thirds gave 0.967. Real text (MiniLM docstrings)
flattered IVFFLAT with every kind by ~0.015, so the aim also sits well above the target
(`aim_for`).

Growth (`maintain`): past RECALIBRATE_GROWTH the index is recalibrated; an IVFFLAT index
past STALE_GROWTH is rebuilt (CONCURRENTLY) and calibrated when auto-rebuild is on, and
announced in the logs and /health otherwise. Both run under the cluster-wide advisory lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chad_memory.vector_codec import vector_text
from chad_memory.vector_index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    TABLE,
    Calibration,
    Method,
    ProgressCallback,
    Setting,
    VectorIndexInfo,
    inspect_index,
    maintenance_lock,
    parse_note,
    rebuild_index,
    write_note,
)

logger = logging.getLogger(__name__)

# Queries per calibration: recall@10 over 200 queries has a standard error near 0.005.
CALIBRATION_QUERIES = 200
CALIBRATION_K = 10
MAX_EF_SEARCH = 1000
# Scores within this of the k-th true neighbour's count as hits: ties and float rounding
# between NumPy and pgvector must not count as misses.
SCORE_TOLERANCE = 1e-5
_READ_BATCH = 2000
# Queries per statement while measuring a setting, and the measurement's early verdict:
# after MIN_DECIDING queries, a setting whose recall so far is Z_DECIDE standard errors
# above (below) the aim passes (fails) without the rest (see _Measure). Per-query recall's
# spread is taken as at least SPREAD_FLOOR, so a run of perfect answers is not certainty.
CHUNK = 20
MIN_DECIDING = 40
Z_DECIDE = 3.0
SPREAD_FLOOR = 0.1
# Share of calibration queries that are midpoints of two stored vectors; with NEAR_SHARE
# the rest are stored vectors, their own row excluded (module docstring).
MIDPOINT_SHARE = 1 / 3
# Share of queries that are a stored vector pulled towards another (weight NEAR_PULL):
# points near the data but at no row's place, whose own row counts as a neighbour.
NEAR_SHARE = 1 / 3
NEAR_PULL = 0.5


def aim_for(target: float) -> float:
    """The recall calibration demands: half the misses the target allows (0.975 for 0.95).

    Its queries only approximate fresh ones and 200 of them carry sampling error: with a
    margin of 0.01, IVFFLAT on real text (MiniLM docstrings) calibrated to 0.963 and gave
    0.939 on held-out queries; with this aim, 0.96 (BENCHMARKS.md).
    """
    return (1.0 + target) / 2


@dataclass(frozen=True)
class _Sample:
    # The stored row a query is (excluded from its answers), None for a midpoint.
    ids: list[uuid.UUID | None]
    vectors: NDArray[np.float32]
    # Score (cosine similarity) of each query's k-th nearest other row.
    kth: NDArray[np.float64]
    # Neighbours each query can have at most (min(k, rows - 1)).
    expected: int
    # The vectors in pgvector's text form, sent as a text[] (made once per calibration).
    texts: list[str]


def _decode(blobs: Sequence[bytes], dim: int) -> NDArray[np.float32]:
    """pgvector's binary form (uint16 dim, uint16 unused, dim big-endian float4) to rows."""
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), 4 + 4 * dim)
    return cast(NDArray[np.float32], raw[:, 4:].copy().view(">f4").astype(np.float32))


def _normalised(x: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return cast(NDArray[np.float32], (x / norms).astype(np.float32))


async def _sample(driver: Any, rows: int, n: int, k: int, seed: int) -> _Sample | None:
    """n queries made from stored vectors (a seeded sample), with exact k-th neighbour scores.

    Stored vectors themselves (their own row excluded from truth and answers), a
    NEAR_SHARE of sampled rows pulled towards another and a MIDPOINT_SHARE of normalised
    midpoints of two (module docstring).
    """
    percent = min(100.0, 100.0 * 3 * n / max(rows, 1))
    picked = await driver.fetch(
        f"SELECT id, vector_send(embedding) AS v FROM {TABLE} "
        f"TABLESAMPLE BERNOULLI ({percent:.6f}) REPEATABLE ({int(seed)})"
    )
    if len(picked) < 2:
        return None
    rng = np.random.default_rng(seed)
    dim = int.from_bytes(picked[0]["v"][:2], "big")
    pool = _normalised(_decode([r["v"] for r in picked], dim))
    n_mid, n_near = round(n * MIDPOINT_SHARE), round(n * NEAR_SHARE)
    own = rng.choice(len(picked), size=min(n - n_mid - n_near, len(picked)), replace=False)
    pairs = rng.choice(len(picked), size=(n_mid + n_near, 2), replace=True)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pull = np.where(np.arange(len(pairs)) < n_mid, 1.0, NEAR_PULL).astype(np.float32)
    ids: list[uuid.UUID | None] = [picked[int(i)]["id"] for i in own]
    ids += [None] * len(pairs)
    queries = _normalised(
        np.concatenate([pool[own], pool[pairs[:, 0]] + pull[:, None] * pool[pairs[:, 1]]])
    )
    position = {qid: i for i, qid in enumerate(ids) if qid is not None}
    best = np.full((len(ids), k), -np.inf)
    total = 0
    async with driver.transaction():
        cursor = await driver.cursor(f"SELECT id, vector_send(embedding) AS v FROM {TABLE}")
        while batch := await cursor.fetch(_READ_BATCH):
            total += len(batch)
            sims = queries @ _normalised(_decode([r["v"] for r in batch], dim)).T
            for j, r in enumerate(batch):
                i = position.get(r["id"])
                if i is not None:
                    sims[i, j] = -np.inf  # a stored vector is not its own neighbour
            if sims.shape[1] > k:
                sims = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
            merged = np.concatenate([best, sims], axis=1)
            best = np.partition(merged, merged.shape[1] - k, axis=1)[:, -k:]
    expected = min(k, total - 1)
    if expected < 1:
        return None
    kth = np.sort(best, axis=1)[:, k - expected]
    # Both kinds of query in every chunk, so a measurement stopped early saw both.
    order = rng.permutation(len(ids))
    queries, kth = queries[order], kth[order]
    texts = [vector_text(q.tolist()) for q in queries]
    return _Sample([ids[int(i)] for i in order], queries, kth, expected, texts)


# The query vectors are cast once (a materialised CTE): inlined, the cast of their text
# would be re-evaluated for every row an exact plan compares.
_SEARCH_SQL = (
    "WITH q AS MATERIALIZED "
    "(SELECT i, t::vector AS v FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)) "
    "SELECT q.i, e.id, e.score FROM q CROSS JOIN LATERAL "
    "(SELECT id, 1 - (embedding <=> q.v) AS score FROM {table} "
    "ORDER BY embedding <=> q.v LIMIT {limit}) e"
)


class _Measure:
    """Recall@k of the index at one setting, measured a chunk of queries at a time.

    Each chunk is one statement (a LATERAL join over the chunk's query vectors: the same
    index scan a search makes, per query, without a round trip each). The measurement stops
    as soon as its verdict on `recall >= aim` is known: for certain (more misses than the
    aim allows, or enough hits whatever the rest give), or, once MIN_DECIDING queries are
    in, with the sampling error of the queries still to come (Z_DECIDE standard errors,
    finite-population corrected, so at the last query it is exact). Settings far from the
    aim stop after a chunk or two; those are most of what the search tries.
    """

    def __init__(self, sample: _Sample, aim: float) -> None:
        self.sample = sample
        self.aim = aim
        self.per_query: list[float] = []

    @property
    def recall(self) -> float:
        return sum(self.per_query) / max(1, len(self.per_query))

    @property
    def complete(self) -> bool:
        return len(self.per_query) == len(self.sample.ids)

    def verdict(self) -> bool | None:
        """True / False once decided, None while more queries are needed."""
        n, total = len(self.per_query), len(self.sample.ids)
        got = sum(self.per_query)
        if got + (total - n) < self.aim * total - 1e-9:
            return False  # even perfect answers to the rest cannot reach the aim
        if got >= self.aim * total - 1e-9:
            return True  # even no hits on the rest keep it at the aim
        if n == total:
            return got >= self.aim * total - 1e-9
        if n < MIN_DECIDING:
            return None
        mean = got / n
        spread = max(float(np.std(self.per_query, ddof=1)), SPREAD_FLOOR)
        error = spread / np.sqrt(n) * np.sqrt((total - n) / (total - 1))
        if mean - Z_DECIDE * error >= self.aim:
            return True
        if mean + Z_DECIDE * error < self.aim:
            return False
        return None


async def _measure(
    driver: Any, measure: _Measure, settings: dict[str, str], k: int, *, full: bool
) -> None:
    """Go on measuring at these settings: over all queries when `full`, else until decided."""
    sample = measure.sample
    started = time.monotonic()
    sql = _SEARCH_SQL.format(table=TABLE, limit=k + 1)
    async with driver.transaction():
        for name, value in settings.items():
            await driver.execute("SELECT set_config($1, $2, true)", name, value)
        for start in range(len(measure.per_query), len(sample.ids), CHUNK):
            stop = min(start + CHUNK, len(sample.ids))
            found: dict[int, list[tuple[float, uuid.UUID]]] = {i: [] for i in range(start, stop)}
            for r in await driver.fetch(sql, sample.texts[start:stop]):
                found[start + int(r["i"]) - 1].append((float(r["score"]), r["id"]))
            for i, rows in found.items():
                # relaxed_order may return near-ties out of order: sort as search does.
                rows.sort(key=lambda row: -row[0])
                scores = [s for s, rid in rows if rid != sample.ids[i]][: sample.expected]
                kth = sample.kth[i] - SCORE_TOLERANCE
                measure.per_query.append(sum(1 for s in scores if s >= kth) / sample.expected)
            if not full and measure.verdict() is not None:
                break
    logger.debug(
        "calibration: %s: recall %.4f after %d queries (%.2f s)",
        settings,
        measure.recall,
        len(measure.per_query),
        time.monotonic() - started,
    )


def _settings_for(info: VectorIndexInfo, value: int) -> tuple[Setting, dict[str, str]]:
    if info.method == "hnsw":
        return "hnsw.ef_search", {
            "hnsw.ef_search": str(value),
            "hnsw.iterative_scan": "relaxed_order",
            "plan_cache_mode": "force_custom_plan",
        }
    return "ivfflat.probes", {
        "ivfflat.probes": str(value),
        "ivfflat.iterative_scan": "relaxed_order",
        "plan_cache_mode": "force_custom_plan",
    }


async def _search_setting(
    driver: Any, info: VectorIndexInfo, sample: _Sample, k: int, aim: float, low: int, top: int
) -> tuple[int, _Measure]:
    """The smallest setting in [low, top] whose recall reaches the aim, measured in full.

    Doubling from `low` until a setting passes, then bisecting down to within an eighth.
    Most of these verdicts come from part of the queries (_Measure); the chosen setting is
    then measured on all of them, and if that falls short after all the search resumes
    above it. Cheap settings are tried first, and an expensive one is measured in full once.
    """
    verdicts: dict[int, bool] = {}
    measures: dict[int, _Measure] = {}

    async def passes(value: int, *, full: bool = False) -> bool:
        measure = measures.setdefault(value, _Measure(sample, aim))
        if value not in verdicts or (full and not measure.complete):
            await _measure(driver, measure, _settings_for(info, value)[1], k, full=full)
            verdicts[value] = bool(measure.verdict())
        return verdicts[value]

    value, failed = low, low - 1
    while not await passes(value) and value < top:
        failed, value = value, min(top, value * 2)
    while True:
        if verdicts[value]:
            while value - failed > max(1, failed // 8):
                middle = (value + failed) // 2
                if await passes(middle):
                    value = middle
                else:
                    failed = middle
        if await passes(value, full=True) or value >= top:
            return value, measures[value]
        # Its early verdict was wrong: resume between it and the next setting that passed.
        failed = value
        value = min((v for v, ok in verdicts.items() if ok and v > value), default=top)
        await passes(value)


async def calibrate(
    engine: AsyncEngine,
    *,
    target: float,
    k: int = CALIBRATION_K,
    queries: int = CALIBRATION_QUERIES,
    seed: int = 0,
) -> VectorIndexInfo:
    """Measure the index present and record the smallest setting whose recall@k >= aim.

    The caller holds the maintenance lock (see `recalibrate`). An index that never reaches
    the aim records its widest setting and the recall measured there (`met: false`), and
    the shortfall is logged: more recall then needs a rebuild (more lists, larger m).
    """
    if not 0 < target <= 1:
        raise ValueError("target recall must be in (0, 1]")
    started = time.monotonic()
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        info = await inspect_index(conn)
        if info.method is None or not info.valid or not info.trained or info.name is None:
            return info
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute("SET statement_timeout = 0")
        try:
            sample = await _sample(driver, info.rows, queries, k, seed)
            if sample is None:
                return info
            logger.debug("calibration: exact neighbours in %.2f s", time.monotonic() - started)
            aim = aim_for(target)
            top = (info.lists or 1) if info.method == "ivfflat" else MAX_EF_SEARCH
            low = 1 if info.method == "ivfflat" else min(k, top)
            value, final = await _search_setting(driver, info, sample, k, aim, low, top)
        finally:
            await driver.execute("RESET statement_timeout")
        setting, _ = _settings_for(info, value)
        calibration = Calibration(
            setting=setting,
            value=value,
            recall=round(final.recall, 4),
            target=target,
            k=k,
            queries=len(sample.ids),
            rows=info.rows,
            at=time.time(),
            seconds=round(time.monotonic() - started, 3),
        )
        note = parse_note(info.note)
        note["calibration"] = {
            **calibration.as_dict(),
            "at": calibration.at,
            "met": calibration.met,
        }
        await write_note(conn, info.name, note)
        after = await inspect_index(conn)
    log = logger.info if calibration.recall >= target else logger.warning
    log(
        "calibrated vector index %s on %d rows: %s=%d gives recall@%d %.3f (target %.3f) "
        "in %.1f s%s",
        info.name,
        info.rows,
        setting,
        value,
        k,
        calibration.recall,
        target,
        calibration.seconds,
        "" if calibration.met else "; below target even at the widest setting: rebuild it",
    )
    return after


async def recalibrate(engine: AsyncEngine, *, target: float) -> VectorIndexInfo:
    """Calibrate the index present now, waiting for any rebuild or calibration running."""
    async with maintenance_lock(engine, wait=True):
        return await calibrate(engine, target=target)


async def rebuild_and_calibrate(
    engine: AsyncEngine,
    *,
    target: float,
    method: Method = "ivfflat",
    lists: int | None = None,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    progress: ProgressCallback | None = None,
) -> VectorIndexInfo:
    """Rebuild the index (CONCURRENTLY) and calibrate it, one such job at a time cluster-wide."""
    async with maintenance_lock(engine, wait=True):
        await rebuild_index(
            engine,
            method=method,
            lists=lists,
            m=m,
            ef_construction=ef_construction,
            progress=progress,
        )
        return await calibrate(engine, target=target)


def maintenance_due(info: VectorIndexInfo, *, target: float, auto_rebuild: bool) -> str | None:
    """ "rebuild", "calibrate" or None: what the index needs for the target, as seen now."""
    if info.rebuild_due and auto_rebuild and info.method is not None:
        return "rebuild"
    if info.recalibration_due:
        return "calibrate"
    # A calibration for another target is left alone: processes configured with different
    # targets would undo each other. `chad-memory memory calibrate` applies a new target.
    return None


async def maintain(
    engine: AsyncEngine, *, target: float, auto_rebuild: bool
) -> VectorIndexInfo | None:
    """Do what growth made due, if no other process is already at it (None: it is).

    Re-reads the index under the lock: another process may have done the work meanwhile.
    """
    async with maintenance_lock(engine, wait=False) as got:
        if not got:
            return None
        async with engine.connect() as conn:
            info = await _inspect(conn)
        due = maintenance_due(info, target=target, auto_rebuild=auto_rebuild)
        if due == "rebuild" and info.method is not None:
            logger.info(
                "vector index %s trained on %d rows, table has %d: rebuilding in the background",
                info.name,
                info.trained_rows,
                info.rows,
            )
            await rebuild_index(
                engine,
                method=info.method,
                m=info.m or HNSW_M,
                ef_construction=info.ef_construction or HNSW_EF_CONSTRUCTION,
            )
            return await calibrate(engine, target=target)
        if due == "calibrate":
            return await calibrate(engine, target=target)
        return info


async def _inspect(conn: AsyncConnection) -> VectorIndexInfo:
    try:
        return await inspect_index(conn)
    finally:
        await conn.rollback()
