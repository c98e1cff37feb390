"""`chad-memory prune|export|import`: data deleted or moved in bulk, batch by batch, with
progress on the terminal.

One module for the three because they share the engine runner and a shape: a long job
over many rows that reports as it goes.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from chad_memory.cli.console import _say
from chad_memory.cli.database import _run_on_engine


def cmd_prune(args: argparse.Namespace) -> int:
    from chad_memory.retention import PruneCriteria, PruneResult, parse_duration, prune

    criteria = PruneCriteria.older_than(
        parse_duration(args.older_than),
        actor=args.actor,
        status=args.status,
        embeddings=args.with_embeddings,
    )

    def show(result: PruneResult) -> None:
        d = result.deleted
        _say(
            f"[{result.elapsed_s:6.1f}s] batch {result.batches}: {d['runs']} runs, "
            f"{d['steps']} steps, {d['llm_calls']} LLM calls deleted so far"
        )

    _say(f"pruning runs created before {criteria.cutoff.isoformat()}")
    result = _run_on_engine(
        lambda engine: prune(
            engine,
            criteria,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            vacuum=not args.no_vacuum,
            reclaim=args.reclaim,
            progress=show,
        )
    )
    d = result.deleted
    verb = "would delete" if result.dry_run else "deleted"
    print(
        f"{verb} {d['runs']} runs, {d['steps']} steps, {d['llm_calls']} LLM calls, "
        f"{d['artifacts']} artifacts, {d['embeddings']} embeddings"
        f"{f' in {result.batches} batches' if result.batches else ''}"
        f"{f'; then {result.vacuumed}' if result.vacuumed else ''}",
        flush=True,
    )
    return 0


def _since(value: str | None) -> datetime | None:
    from chad_memory.errors import InvalidInputError

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"--since must be an ISO 8601 date or time, got {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_export(args: argparse.Namespace) -> int:
    from chad_memory.archive import ExportScope, TransferCounts, export_to_file

    scope = ExportScope(actor=args.actor, since=_since(args.since))

    def show(counts: TransferCounts) -> None:
        _say(f"{counts.total} rows written ...")

    counts = _run_on_engine(
        lambda engine: export_to_file(engine, Path(args.out), scope, progress=show)
    )
    summary = ", ".join(f"{n} {kind.replace('_', ' ')}s" for kind, n in counts.rows.items())
    print(f"exported {counts.total} rows to {args.out}: {summary}", flush=True)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from chad_memory.archive import TransferCounts
    from chad_memory.archive_import import import_file

    def show(counts: TransferCounts) -> None:
        _say(f"{counts.total} rows inserted, {counts.skipped} already there ...")

    path = Path(args.file)
    if not path.is_file():
        raise OSError(f"no such file: {path}")
    actor = None if args.all_actors else args.actor
    counts = _run_on_engine(lambda engine: import_file(engine, path, actor=actor, progress=show))
    print(
        f"imported {counts.total} rows ({counts.skipped} already present, "
        f"{counts.unlinked} links to rows outside the file left empty)",
        flush=True,
    )
    return 0
