"""`chad-memory memory reindex|status|calibrate`: the vector index, its build progress and
its recall calibration."""

from __future__ import annotations

import argparse
import asyncio

from chad_memory.cli.console import _say
from chad_memory.cli.database import _prepare_embedded
from chad_memory.vector_index import VectorIndexInfo


def cmd_memory_reindex(args: argparse.Namespace) -> int:
    """Rebuild the vector index, printing the build's phase and tuple counts as it goes."""
    from chad_memory.database import close_db_connections, get_session_factory
    from chad_memory.stores.vectors import PgVectorStore
    from chad_memory.vector_index import ReindexProgress

    def show(p: ReindexProgress) -> None:
        # HNSW builds report no total, only the rows loaded so far.
        count = (
            f"{p.tuples_done}/{p.tuples_total} rows ({100 * p.tuples_done / p.tuples_total:.0f}%)"
            if p.tuples_total
            else f"{p.tuples_done} rows"
        )
        _say(f"[{p.elapsed_s:6.1f}s] {p.phase}: {count}")

    async def runner() -> int:
        try:
            store = PgVectorStore(get_session_factory())
            before = await store.index_info()
            _say(
                f"rebuilding the vector index ({args.method}) on {before.rows} rows; "
                f"now: {before.name} ({before.method}, trained on {before.trained_rows} rows"
                f"{', stale' if before.stale else ''}); reads and writes continue meanwhile"
            )
            after = await store.reindex(
                method=args.method,
                lists=args.lists,
                m=args.m,
                ef_construction=args.ef_construction,
                progress=show,
            )
            shape = f"lists={after.lists}" if after.method == "ivfflat" else f"m={after.m}"
            _say(f"done: {after.name} ({after.method}, {shape}, trained on {after.trained_rows})")
            _say(_calibration_line(after))
            return 0
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


def _calibration_line(info: VectorIndexInfo) -> str:
    c = info.calibration
    if c is None:
        return "calibration: none yet (searches use a default setting until one is measured)"
    return (
        f"calibration: {c.setting}={c.value} gives recall@{c.k} {c.recall:.3f} "
        f"(target {c.target:.3f}, {'met' if c.met else 'NOT met'}) on {c.rows} rows, "
        f"{c.queries} queries, measured {c.as_dict()['at']} in {c.seconds:.1f} s"
    )


def cmd_memory_status(args: argparse.Namespace) -> int:
    """Print the vector index, what it was trained on and what its calibration measured."""
    from chad_memory.database import close_db_connections, get_session_factory
    from chad_memory.stores.vectors import PgVectorStore

    async def runner() -> int:
        try:
            info = await PgVectorStore(get_session_factory()).index_info()
        finally:
            await close_db_connections()
        if info.method is None:
            _say(f"no vector index; {info.rows} rows, searches scan exactly")
            return 0
        shape = (
            f"lists={info.lists}"
            if info.method == "ivfflat"
            else f"m={info.m}, ef_construction={info.ef_construction}"
        )
        built = info.as_dict()["built_at"] or "unknown"
        _say(
            f"index: {info.name} ({info.method}, {shape}{'' if info.valid else ', INVALID'}); "
            f"trained on {info.trained_rows} rows, built {built}; table has {info.rows} rows"
        )
        _say(_calibration_line(info))
        if info.rebuild_due:
            _say("rebuild due: the table has outgrown the index (`chad-memory memory reindex`)")
        elif info.recalibration_due:
            _say("recalibration due: the next search starts it (or `chad-memory memory calibrate`)")
        return 0

    _prepare_embedded()
    return asyncio.run(runner())


def cmd_memory_calibrate(args: argparse.Namespace) -> int:
    """Calibrate the present index for VECTOR_TARGET_RECALL (or --target), without a rebuild."""
    from chad_memory.database import close_db_connections, get_session_factory
    from chad_memory.stores.vectors import PgVectorStore

    async def runner() -> int:
        try:
            store = PgVectorStore(get_session_factory(), target_recall=args.target)
            info = await store.calibrate()
        finally:
            await close_db_connections()
        _say(_calibration_line(info))
        return 0

    _prepare_embedded()
    return asyncio.run(runner())


def _recall_target(value: str) -> float:
    target = float(value)
    if not 0 < target <= 1:
        raise argparse.ArgumentTypeError("the target recall must be in (0, 1]")
    return target
