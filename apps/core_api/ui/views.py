"""What the pages compute from store records: the waterfall's layout, the usage series,
and the filters that text formatting needs (statistics come from the stores)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic_core import to_json

from chad_memory.schemas import (
    LLMCallRecord,
    RunRecord,
    RunSummary,
    StepRecord,
    TextHit,
    UsageReport,
)

# Waterfall bars are drawn in an SVG 1000 units wide; a bar is never thinner than this.
SCALE = 1000.0
MIN_BAR = 3.0
MAX_DEPTH = 8
# JSON shown in a page is cut here; the API has the full value.
MAX_JSON_CHARS = 20_000


@dataclass
class StepRow:
    step: StepRecord
    depth: int
    x: float | None = None
    width: float | None = None
    calls: list[LLMCallRecord] = field(default_factory=list)
    # Placed from its duration alone (no started_at): one after another, in index order.
    estimated: bool = False


@dataclass
class Waterfall:
    rows: list[StepRow]
    total: int
    span_ms: float | None
    ticks: list[tuple[float, str]]
    # (how long the steps shown take, the run's own duration) when the steps end after
    # the run does: the times are as reported, and the page says so.
    outlast: tuple[float, float] | None = None


def _estimated_starts(steps: Sequence[StepRecord], t0: datetime) -> dict[uuid.UUID, datetime]:
    """Steps that carry only a duration, laid one after another from t0 in index order."""
    at, found = t0, {}
    for s in sorted(steps, key=lambda s: s.step_index):
        if s.started_at is None and s.duration_ms is not None:
            found[s.id] = at
            at += timedelta(milliseconds=s.duration_ms)
    return found


def _end(step: StepRecord) -> datetime | None:
    if step.completed_at is not None:
        return step.completed_at
    if step.started_at is not None and step.duration_ms is not None:
        return step.started_at + timedelta(milliseconds=step.duration_ms)
    return step.started_at


def tree_order(steps: Sequence[StepRecord]) -> list[tuple[StepRecord, int]]:
    """Steps depth-first by parent_step_id, siblings by step_index, with their depth.

    A parent that is missing (or a cycle) makes a step a root, so every step appears once.
    """
    ids = {s.id for s in steps}
    children: dict[uuid.UUID | None, list[StepRecord]] = defaultdict(list)
    for s in steps:
        parent = s.parent_step_id if s.parent_step_id in ids and s.parent_step_id != s.id else None
        children[parent].append(s)
    for kids in children.values():
        kids.sort(key=lambda s: s.step_index)
    ordered: list[tuple[StepRecord, int]] = []
    seen: set[uuid.UUID] = set()
    stack: list[tuple[StepRecord, int]] = [(s, 0) for s in reversed(children[None])]
    while stack:
        step, depth = stack.pop()
        if step.id in seen:
            continue
        seen.add(step.id)
        ordered.append((step, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(step.id, [])))
    # Steps only reachable through a cycle: shown as roots, in index order.
    for s in sorted(steps, key=lambda s: s.step_index):
        if s.id not in seen:
            seen.add(s.id)
            ordered.append((s, 0))
    return ordered


def waterfall(
    run: RunRecord,
    steps: Sequence[StepRecord],
    calls: Sequence[LLMCallRecord],
    *,
    total: int,
) -> Waterfall:
    """One page of steps as a tree, placed on the run's time axis (its started_at and
    completed_at when known, else the span of the steps shown). `total` is the run's
    step count; a parent on another page makes its children roots here."""
    starts = [s.started_at for s in steps if s.started_at is not None]
    if run.started_at is not None:
        starts.append(run.started_at)
    # Steps sent with only a duration start where the run (or the first step) does.
    estimated = _estimated_starts(steps, min(starts) if starts else _EPOCH)
    begin = {s.id: s.started_at or estimated.get(s.id) for s in steps}
    finish = {
        s.id: _end(s) if s.id not in estimated else estimated[s.id] + _ms(s.duration_ms)
        for s in steps
    }
    starts += estimated.values()
    ends = [e for e in finish.values() if e is not None]
    if run.completed_at is not None:
        ends.append(run.completed_at)
    t0 = min(starts) if starts else None
    t1 = max([*ends, *starts]) if starts else None
    span_ms = (t1 - t0).total_seconds() * 1000 if t0 and t1 else None
    by_step: dict[uuid.UUID, list[LLMCallRecord]] = defaultdict(list)
    for c in calls:
        if c.step_id is not None:
            by_step[c.step_id].append(c)
    rows = []
    for step, depth in tree_order(steps):
        row = StepRow(step, min(depth, MAX_DEPTH), calls=by_step.get(step.id, []))
        row.estimated = step.id in estimated
        start = begin[step.id]
        if t0 is not None and span_ms and start is not None:
            end = finish[step.id] or start
            row.x = min((start - t0).total_seconds() * 1000 / span_ms * SCALE, SCALE)
            width = (end - start).total_seconds() * 1000 / span_ms * SCALE
            row.width = max(MIN_BAR, min(width, SCALE - row.x))
            row.x = min(row.x, SCALE - row.width)
        elif t0 is not None and span_ms == 0 and start is not None:
            row.x, row.width = 0.0, MIN_BAR
        rows.append(row)
    ticks = []
    if span_ms:
        ticks = [(SCALE * f, duration(span_ms * f)) for f in (0, 0.25, 0.5, 0.75, 1)]
    outlast = None
    step_ends = [e for e in finish.values() if e is not None]
    if run.started_at and run.completed_at and step_ends and max(step_ends) > run.completed_at:
        run_ms = (run.completed_at - run.started_at).total_seconds() * 1000
        outlast = ((max(step_ends) - run.started_at).total_seconds() * 1000, run_ms)
    return Waterfall(rows=rows, total=total, span_ms=span_ms, ticks=ticks, outlast=outlast)


def _ms(value: float | None) -> timedelta:
    return timedelta(milliseconds=value or 0)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def last_line(text: str | None) -> str:
    """An error's last non-empty line: a traceback's exception, what a reader wants first."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def usage_series(by_day_model: UsageReport, by_day: UsageReport) -> dict[str, Any]:
    """uPlot's columns: one x per day with calls (epoch seconds, oldest first), and per
    model its tokens and cost that day; plus each day's latency p50 and p95."""
    days = [r.group["day"] for r in by_day.rows]
    models = sorted({r.group["model"] or "?" for r in by_day_model.rows})
    cell = {(r.group["day"], r.group["model"] or "?"): r for r in by_day_model.rows}
    tokens: dict[str, list[int | None]] = {m: [] for m in models}
    cost: dict[str, list[float | None]] = {m: [] for m in models}
    for day in days:
        for name in models:
            row = cell.get((day, name))
            tokens[name].append(row.total_tokens if row else None)
            cost[name].append(float(row.cost_usd) if row else None)
    return {
        "x": [datetime.fromisoformat(f"{d}T00:00:00+00:00").timestamp() for d in days],
        "models": models,
        "tokens": tokens,
        "cost": cost,
        "p50": [r.latency_ms_p50 for r in by_day.rows],
        "p95": [r.latency_ms_p95 for r in by_day.rows],
    }


# Jinja filters --------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms == 0:
        return "0 ms"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    if minutes < 60:
        return f"{int(minutes)} m {int(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} m"


def run_duration(run: RunSummary) -> float | None:
    if run.started_at is None:
        return None
    end = run.completed_at
    if end is None:
        return None
    return (end - run.started_at).total_seconds() * 1000


def usd(value: Decimal | float | None) -> str:
    """Dollars to four significant digits ($0.001916, $0.0004413, $12.35); the API has
    the exact amount."""
    if value is None:
        return "—"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"${amount:,.2f}"
    rounded = amount.quantize(Decimal(1).scaleb(amount.adjusted() - 3))
    return "$" + f"{rounded:f}".rstrip("0").rstrip(".")


def number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


def pretty_json(value: Any) -> str:
    """`json.dumps(value, indent=2, ensure_ascii=False, default=str)`, in pydantic-core's
    Rust encoder: with `indent` the standard library leaves its C encoder for pure Python,
    and a run page formats two of these per step."""
    text = to_json(value, indent=2, fallback=str).decode()
    if len(text) > MAX_JSON_CHARS:
        return text[:MAX_JSON_CHARS] + f"\n… cut at {MAX_JSON_CHARS:,} characters (see the API)"
    return text


def hit_link(hit: TextHit) -> str:
    """Where a search hit lives on the dashboard."""
    if hit.kind == "step":
        return f"/ui/runs/{hit.run_id}#step-{hit.id}"
    if hit.kind in ("run", "llm_call"):
        return f"/ui/runs/{hit.run_id}"
    if hit.kind == "memory":
        return f"/ui/memory/{hit.id}"
    return f"/ui/threads/{hit.thread_id}"


def snippet_parts(hit: TextHit) -> list[tuple[str, bool]]:
    """The snippet as (text, matched) pieces; the template escapes each one."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for start, end in hit.highlights:
        if start > at:
            parts.append((hit.snippet[at:start], False))
        parts.append((hit.snippet[start:end], True))
        at = end
    if at < len(hit.snippet):
        parts.append((hit.snippet[at:], False))
    return parts


def tool_call_name(call: Any) -> str | None:
    """The tool a message's tool call names, in whichever shape it was stored: LangChain's
    and Anthropic's (`name` at the top), OpenAI's (`function.name`), or neither (None).
    Tool calls are free JSON, so any item, even one that is not an object, has an answer."""
    if not isinstance(call, dict):
        return None
    name = call.get("name")
    if name is None and isinstance(call.get("function"), dict):
        name = call["function"].get("name")
    return name if isinstance(name, str) and name else None
