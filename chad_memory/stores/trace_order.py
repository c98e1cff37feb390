"""Where a trace's spans go among its run's steps: step_index and parent links.

step_index is start-time order within the run, by (started_at, roots first, completed_at
desc, the order sent): steps already stored were sent before this export's, and this
export's keep their order in it. The order is computed from the new spans and the run's
stored steps; stored steps whose index changes wait at TEMP_MOVED + index while the new
steps are inserted at their final indexes, then land (TraceStore.save_spans runs the
statements). Indexes of a trace's steps can therefore change while its spans are still
arriving.

A step's id is derived from its run and span (`span_step_id`), so a re-sent span finds
its stored step. A child's parent_step_id is set when the parent is in the same export
or already stored; a stored child whose parent arrives is linked then.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the mapping imports the stores' package; only its type is needed here
    from chad_memory.otlp.mapping import MappedSpan

# Stored steps whose index changes wait at TEMP_MOVED + their new index, far above any
# real one, while the new steps take their places (the unique index is checked per row).
TEMP_MOVED = 2**30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def span_step_id(run_id: uuid.UUID, span_id: str) -> uuid.UUID:
    return uuid.uuid5(run_id, span_id)


def span_call_id(run_id: uuid.UUID, span_id: str) -> uuid.UUID:
    """The LLM call of an LLM span, derived like its step."""
    return uuid.uuid5(run_id, f"llm:{span_id}")


@dataclass(frozen=True)
class Placed:
    """A step as ordering sees it: stored already (`index` set) or new (`span` set)."""

    id: uuid.UUID
    started_at: datetime | None
    completed_at: datetime | None
    has_parent: bool
    # The order sent: stored steps first (in their index order), then the export's.
    sent: tuple[int, int]
    index: int | None = None
    span: MappedSpan | None = None

    def order(self) -> tuple[Any, ...]:
        """Start time; on ties roots first, then the longer step, then the order sent."""
        started, completed = self.started_at, self.completed_at
        return (
            started is None,
            started or _EPOCH,
            self.has_parent,
            completed is None,
            -(completed - _EPOCH).total_seconds() if completed else 0.0,
            self.sent,
        )


@dataclass(frozen=True)
class NewStep:
    """A new step: where it goes (run, final index) and its parent step, if present."""

    placed: Placed
    run_id: uuid.UUID
    index: int
    parent: uuid.UUID | None


@dataclass
class Plan:
    """What one export changes: new steps (with final index and parent), stored steps that
    move (id -> final index), and stored children whose parent arrives (id -> parent)."""

    new: list[NewStep]
    moved: dict[uuid.UUID, int]
    links: dict[uuid.UUID, uuid.UUID]


def plan_steps(
    traces: dict[str, list[MappedSpan]],
    trace_ids: list[str],
    run_ids: dict[str, uuid.UUID],
    stored_rows: Sequence[Any],
) -> Plan:
    by_run: dict[uuid.UUID, list[Any]] = {}
    for row in stored_rows:
        by_run.setdefault(row.run_id, []).append(row)
    plan = Plan(new=[], moved={}, links={})
    for trace_id in trace_ids:
        run_id = run_ids[trace_id]
        rows = by_run.get(run_id, [])
        known = {row.id for row in rows}
        step_ids = {s.span_id: span_step_id(run_id, s.span_id) for s in traces[trace_id]}
        fresh = [s for s in traces[trace_id] if step_ids[s.span_id] not in known]
        if not fresh:
            continue
        arriving = {step_ids[s.span_id]: s.span_id for s in fresh}
        present = known | arriving.keys()
        placed = [
            Placed(
                id=row.id,
                started_at=row.started_at,
                completed_at=row.completed_at,
                has_parent=row.parent_step_id is not None or row.parent_span_id is not None,
                sent=(0, row.step_index),
                index=row.step_index,
            )
            for row in rows
        ]
        placed += [
            Placed(
                id=step_ids[s.span_id],
                started_at=s.step.started_at,
                completed_at=s.step.completed_at,
                has_parent=s.parent_span_id is not None,
                sent=(1, position),
                span=s,
            )
            for position, s in enumerate(fresh)
        ]
        for rank, item in enumerate(sorted(placed, key=Placed.order)):
            if item.span is None:
                if item.index != rank:
                    plan.moved[item.id] = rank
                continue
            parent = None
            parent_span = item.span.parent_span_id
            if parent_span is not None:
                candidate = step_ids.get(parent_span) or span_step_id(run_id, parent_span)
                parent = candidate if candidate in present else None
            plan.new.append(NewStep(item, run_id, rank, parent))
        arriving_spans = {span: step_id for step_id, span in arriving.items()}
        for row in rows:
            if row.parent_step_id is None and row.parent_span_id in arriving_spans:
                plan.links[row.id] = arriving_spans[row.parent_span_id]
    return plan
