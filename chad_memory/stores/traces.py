"""Spans into run history, a whole export at a time, in one transaction of a few statements.

How the rules of OTLP ingestion are kept (see chad_memory/otlp for the mapping):

- One run per (actor, trace id): runs are upserted on `uq_runs_actor_trace_id`. The
  upsert locks each run row until commit, so two exports of one trace take turns, and
  runs are upserted in trace-id order so two exports cannot deadlock on each other.
- A re-sent span is stored once: a step's id is derived from its run and span
  (`span_step_id`: uuid5 in the run's id), so a repeat hits `ON CONFLICT (id) DO NOTHING`.
  The LLM call of an LLM span is derived the same way and only written with a new step.
- The root span names the run and gives its times, outcome, `request_payload` (the
  root's input) and `result` (its output); they stay on the root's step too.
- A child may arrive before its parent. Its parent_step_id is set when the parent is in
  the same export or already stored; otherwise it stays null (the column is a foreign
  key) until the parent arrives, when the parent's insert links its waiting children.
- step_index is start-time order within the run (chad_memory.stores.trace_order plans
  it; the statements here apply the plan).
- An LLM span's call is priced like any other new call (`price_new_calls`): a cost the
  span reports is kept as sent, otherwise the price table in force decides, in one
  statement for the export, before any step is written. A span whose computed cost does
  not fit the column is refused alone (OTLP partial success), the rest stored; a new run
  left without spans is not kept.
- GenAI log events that arrived before their span (POST /v1/logs) wait in
  pending_span_content; the span's export applies them to its new step and call
  (chad_memory.stores.span_logs).
- Conversations: a span's `gen_ai.conversation.id` (or `session.id`) names a thread
  whose id is derived from (actor, conversation id) (`conversation_thread_id`); the
  thread is created on first sight and the run linked to it, so GET /runs?conversation_id=
  and GET /threads/{id}/runs list a conversation's runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from chad_memory.prices import CallCost, price_new_calls
from chad_memory.schemas import LLMCallFields
from chad_memory.stores.base import Store
from chad_memory.stores.conversations import conversation_thread_id
from chad_memory.stores.span_logs import attach_pending
from chad_memory.stores.steps import insert_steps, step_arrays, step_row
from chad_memory.stores.trace_order import (
    TEMP_MOVED,
    NewStep,
    Placed,
    plan_steps,
    span_call_id,
    span_step_id,
)
from chad_memory.stores.trace_runs import UPSERT_RUNS
from chad_memory.stores.transactions import driver_of, retried, transaction
from chad_memory.validation import check_actor
from chad_memory.vocabulary import LIVE

if TYPE_CHECKING:  # the mapping imports the stores' package; only its type is needed here
    from chad_memory.otlp.mapping import MappedSpan


@dataclass(frozen=True)
class SavedSpans:
    """What an export did: steps newly stored, spans that were already there, and spans
    refused by the store (span id, why): an LLM call whose computed cost does not fit."""

    stored: int
    duplicates: int
    refused: list[tuple[str, str]] = field(default_factory=list)


def _json(value: Any) -> str:
    return json.dumps(value)


_UPSERT_THREADS = text(
    "INSERT INTO threads (id, actor, title, agent_type, metadata) "
    "SELECT u.id, :actor, u.title, u.agent_type, u.metadata "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:agents AS text[]), "
    "CAST(:metadata AS jsonb[])) AS u(id, title, agent_type, metadata) "
    "ON CONFLICT (id) DO NOTHING"
)

# The root span decides the run's name, times, outcome, request and result (its input and
# output), unless the run already ended.
_ROOT_UPDATE = text(
    "UPDATE runs SET name = u.name, status = u.status, error = u.error, "
    "started_at = COALESCE(u.started_at, runs.started_at), completed_at = u.completed_at, "
    "request_payload = u.request_payload, result = u.result, updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:statuses AS text[]), "
    "CAST(:errors AS text[]), CAST(:started AS timestamptz[]), "
    "CAST(:completed AS timestamptz[]), CAST(:inputs AS jsonb[]), CAST(:outputs AS jsonb[])) "
    "AS u(id, name, status, error, started_at, completed_at, request_payload, result) "
    "WHERE runs.id = u.id AND runs.status = ANY(CAST(:live AS text[]))"
)

# What ordering and linking need to know of the steps already stored for a run.
_STORED_STEPS = text(
    "SELECT id, run_id, step_index, started_at, completed_at, parent_step_id, "
    "metadata -> 'otel' ->> 'parent_span_id' AS parent_span_id "
    "FROM steps WHERE run_id = ANY(CAST(:run_ids AS uuid[]))"
)

# Stored steps whose index changes move out of the way first, so the new steps can go
# straight to their final index; then they (and children whose parent just arrived) land.
_MOVE_ASIDE = text(
    f"UPDATE steps SET step_index = {TEMP_MOVED} + u.rank "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:ranks AS int4[])) AS u(id, rank) "
    "WHERE steps.id = u.id"
)
_SETTLE = text(
    "UPDATE steps SET step_index = COALESCE(u.rank, steps.step_index), "
    "parent_step_id = COALESCE(u.parent, steps.parent_step_id) "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:ranks AS int4[]), CAST(:parents AS uuid[])) "
    "AS u(id, rank, parent) WHERE steps.id = u.id"
)

_DELETE_RUNS = text("DELETE FROM runs WHERE id = ANY(CAST(:ids AS uuid[]))")

_CALL_COLUMNS = (
    "id, run_id, step_id, provider, model, prompt_tokens, completion_tokens, total_tokens, "
    "cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cost_source, price_id, "
    "price_ref, latency_ms, status, error, request, response, request_model, response_model"
)
# Rows are inserted in plan order (start time, then the order sent), which is their seq.
_INSERT_CALLS = text(
    f"INSERT INTO llm_calls ({_CALL_COLUMNS}, started_at) "
    f"SELECT {_CALL_COLUMNS}, COALESCE(started_at, now()) "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:run_ids AS uuid[]), "
    "CAST(:step_ids AS uuid[]), CAST(:providers AS text[]), CAST(:models AS text[]), "
    "CAST(:prompt AS int4[]), CAST(:completion AS int4[]), CAST(:total AS int4[]), "
    "CAST(:cached AS int4[]), CAST(:cache_write AS int4[]), CAST(:reasoning AS int4[]), "
    "CAST(:costs AS numeric[]), CAST(:cost_sources AS text[]), CAST(:price_ids AS uuid[]), "
    "CAST(:price_refs AS text[]), CAST(:latencies AS float8[]), CAST(:statuses AS text[]), "
    "CAST(:errors AS text[]), CAST(:requests AS jsonb[]), CAST(:responses AS jsonb[]), "
    "CAST(:request_models AS text[]), CAST(:response_models AS text[]), "
    "CAST(:started AS timestamptz[])) "
    f"WITH ORDINALITY AS u({_CALL_COLUMNS}, started_at, position) "
    "ORDER BY position "
    "ON CONFLICT (id) DO NOTHING"
)


class TraceStore(Store):
    """Spans as runs, steps and LLM calls; one export is one transaction."""

    @retried
    async def save_spans(self, traces: dict[str, list[MappedSpan]], *, actor: str) -> SavedSpans:
        """Store mapped spans for `actor`: all of them or, on an error, none."""
        trace_ids = sorted(traces)
        if not trace_ids:
            return SavedSpans(0, 0)
        check_actor(actor)
        async with transaction(self._db, "save_spans") as session:

            async def run(stmt: Any, **params: Any) -> Any:
                return await session.execute(stmt, params)

            threads = _threads(traces, trace_ids, actor)
            if threads:
                await run(_UPSERT_THREADS, actor=actor, **threads)
            rows = (await run(UPSERT_RUNS, actor=actor, **_runs(traces, trace_ids, actor))).all()
            run_ids = {row.trace_id: row.id for row in rows}
            existing_runs = {row.id for row in rows if not row.inserted}
            stored: list[Any] = []
            if existing_runs:
                stored = list(await run(_STORED_STEPS, run_ids=sorted(existing_runs)))
            # New calls are priced before anything else is written: a span whose cost
            # does not fit is refused alone, and the plan is made without it.
            costs, refused = await _price_fresh_calls(session, traces, run_ids, stored)
            if refused:
                traces = _without(traces, {span_id for span_id, _ in refused})
                emptied = [run_ids[t] for t in trace_ids if t not in traces]
                gone = [i for i in emptied if i not in existing_runs]
                if gone:  # a new run left without a span: as if never made
                    await run(_DELETE_RUNS, ids=gone)
                trace_ids = [t for t in trace_ids if t in traces]
            roots = _roots(traces, run_ids)
            if roots["ids"]:
                await run(_ROOT_UPDATE, live=list(LIVE), **roots)
            # Ordering is pure Python over every span (up to MAX_SPANS_PER_EXPORT): in a
            # thread, so the event loop serves other requests meanwhile.
            plan = await asyncio.to_thread(plan_steps, traces, trace_ids, run_ids, stored)
            if plan.moved:
                await run(_MOVE_ASIDE, ids=list(plan.moved), ranks=list(plan.moved.values()))
            new_ids: set[uuid.UUID] = set()
            if plan.new:
                driver = await driver_of(await session.connection())
                inserted = await insert_steps(driver, _steps(plan.new), actor)
                new_ids = {row[0] for row in inserted}
            settle: dict[uuid.UUID, tuple[int | None, uuid.UUID | None]] = {
                i: (r, None) for i, r in plan.moved.items()
            }
            for child, parent in plan.links.items():
                settle[child] = (settle.get(child, (None, None))[0], parent)
            if settle:
                ids = list(settle)
                await run(
                    _SETTLE,
                    ids=ids,
                    ranks=[settle[i][0] for i in ids],
                    parents=[settle[i][1] for i in ids],
                )
            new = [n for n in plan.new if n.placed.id in new_ids]
            llm = [(n.placed, n.run_id) for n in new if n.placed.span and n.placed.span.call]
            if llm:
                await run(_INSERT_CALLS, **_calls(llm, [costs[p.id] for p, _ in llm]))
            waiting = [
                (n.run_id, n.placed.span.span_id)
                for n in new
                if n.placed.span is not None and n.run_id in existing_runs
            ]
            if waiting:  # log content that came before its span (stores.span_logs)
                await attach_pending(session, waiting)
        spans = sum(len(traces[t]) for t in trace_ids)
        self._db.ingested("spans", len(new))
        return SavedSpans(stored=len(new), duplicates=spans - len(new), refused=refused)


async def _price_fresh_calls(
    session: Any,
    traces: dict[str, list[MappedSpan]],
    run_ids: dict[str, uuid.UUID],
    stored: Sequence[Any],
) -> tuple[dict[uuid.UUID, CallCost], list[tuple[str, str]]]:
    """The cost of every LLM span not stored yet (by its step id), and the spans whose
    computed cost does not fit the column, with why."""
    known = {row.id for row in stored}
    fresh: list[tuple[uuid.UUID, MappedSpan]] = []
    for trace_id, spans in traces.items():
        run_id = run_ids[trace_id]
        for span in spans:
            if span.call is not None and span_step_id(run_id, span.span_id) not in known:
                fresh.append((run_id, span))
    if not fresh:
        return {}, []
    unfit: dict[int, str] = {}
    assert all(span.call is not None for _, span in fresh)
    costs = await price_new_calls(
        session, [(run_id, span.call) for run_id, span in fresh if span.call], unfit=unfit
    )
    by_step = {
        span_step_id(run_id, span.span_id): cost
        for (run_id, span), cost in zip(fresh, costs, strict=True)
    }
    return by_step, [(fresh[i][1].span_id, reason) for i, reason in sorted(unfit.items())]


def _without(
    traces: dict[str, list[MappedSpan]], span_ids: set[str]
) -> dict[str, list[MappedSpan]]:
    """`traces` without those spans; a trace left with none is left out."""
    kept = {t: [s for s in spans if s.span_id not in span_ids] for t, spans in traces.items()}
    return {t: spans for t, spans in kept.items() if spans}


def _first(spans: list[MappedSpan]) -> MappedSpan:
    """The span that speaks for the run: its root when present, else the earliest."""
    for span in spans:
        if span.is_root:
            return span
    return min(spans, key=lambda s: (s.step.started_at is None, s.step.started_at))


def _conversation(spans: list[MappedSpan]) -> str | None:
    first = _first(spans)
    if first.conversation_id is not None:
        return first.conversation_id
    return next((s.conversation_id for s in spans if s.conversation_id is not None), None)


def _threads(
    traces: dict[str, list[MappedSpan]], trace_ids: list[str], actor: str
) -> dict[str, list[Any]]:
    found: dict[uuid.UUID, tuple[str, str]] = {}
    for trace_id in trace_ids:
        conversation = _conversation(traces[trace_id])
        if conversation is not None:
            agent = _first(traces[trace_id]).agent or "opentelemetry"
            found[conversation_thread_id(actor, conversation)] = (conversation, agent)
    if not found:
        return {}
    ids = sorted(found)
    return {
        "ids": ids,
        "titles": [found[i][0] for i in ids],
        "agents": [found[i][1] for i in ids],
        "metadata": [_json({"conversation_id": found[i][0], "source": "otlp"}) for i in ids],
    }


def _runs(
    traces: dict[str, list[MappedSpan]], trace_ids: list[str], actor: str
) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {
        k: [] for k in ("ids", "trace_ids", "agents", "thread_ids", "started", "metadata")
    }
    for trace_id in trace_ids:
        spans = traces[trace_id]
        first = _first(spans)
        conversation = _conversation(spans)
        otel: dict[str, Any] = {"resource": first.resource}
        if conversation is not None:
            otel["conversation_id"] = conversation
        user = first.user_id or next((s.user_id for s in spans if s.user_id), None)
        if user is not None:
            otel["user_id"] = user
        starts = [s.step.started_at for s in spans if s.step.started_at is not None]
        params["ids"].append(uuid.uuid4())
        params["trace_ids"].append(trace_id)
        params["agents"].append(first.agent)
        params["thread_ids"].append(
            None if conversation is None else conversation_thread_id(actor, conversation)
        )
        params["started"].append(min(starts) if starts else None)
        params["metadata"].append(_json({"otel": otel}))
    return params


def _roots(
    traces: dict[str, list[MappedSpan]], run_ids: dict[str, uuid.UUID]
) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {
        k: []
        for k in ("ids", "names", "statuses", "errors", "started", "completed", "inputs", "outputs")
    }
    for trace_id, spans in traces.items():
        root = next((s for s in spans if s.is_root), None)
        if root is None:
            continue
        params["ids"].append(run_ids[trace_id])
        params["names"].append(root.step.name)
        params["statuses"].append(root.run_status)
        params["errors"].append(root.run_error)
        params["started"].append(root.step.started_at)
        params["completed"].append(root.step.completed_at)
        # A root without input or output leaves the run's columns null, as an API run's.
        params["inputs"].append(None if root.input_json == "null" else root.input_json)
        params["outputs"].append(None if root.output_json == "null" else root.output_json)
    return params


def _steps(new: Sequence[NewStep]) -> list[list[Any]]:
    """The new steps as `insert_steps` takes them: the span's step fields, with the
    placement the plan decided and the JSON text the mapping checked."""
    rows = []
    for entry in new:
        span = entry.placed.span
        assert span is not None
        rows.append(
            step_row(
                span.step,
                id=entry.placed.id,
                run_id=entry.run_id,
                step_index=entry.index,
                parent_step_id=entry.parent,
                input=span.input_json,
                output=span.output_json,
                metadata=span.metadata_json,
            )
        )
    return step_arrays(rows)


def _call(item: Placed) -> LLMCallFields:
    assert item.span is not None
    assert item.span.call is not None
    return item.span.call


def _calls(
    new: Sequence[tuple[Placed, uuid.UUID]], costs: Sequence[CallCost]
) -> dict[str, list[Any]]:
    names = [
        "ids",
        "run_ids",
        "step_ids",
        "providers",
        "models",
        "prompt",
        "completion",
        "total",
        "cached",
        "cache_write",
        "reasoning",
        "costs",
        "cost_sources",
        "price_ids",
        "price_refs",
        "latencies",
        "statuses",
        "errors",
        "requests",
        "responses",
        "request_models",
        "response_models",
        "started",
    ]
    params: dict[str, list[Any]] = {k: [] for k in names}
    for (item, run_id), cost in zip(new, costs, strict=True):
        call = _call(item)
        assert item.span is not None
        params["ids"].append(span_call_id(run_id, item.span.span_id))
        params["run_ids"].append(run_id)
        params["step_ids"].append(item.id)
        params["providers"].append(call.provider)
        params["models"].append(call.model)
        params["prompt"].append(call.prompt_tokens)
        params["completion"].append(call.completion_tokens)
        params["total"].append(call.stored_total_tokens)
        params["cached"].append(call.cached_tokens)
        params["cache_write"].append(call.cache_write_tokens)
        params["reasoning"].append(call.reasoning_tokens)
        params["costs"].append(cost.cost_usd)
        params["cost_sources"].append(cost.cost_source)
        params["price_ids"].append(cost.price_id)
        params["price_refs"].append(cost.price_ref)
        params["latencies"].append(call.latency_ms)
        params["statuses"].append(call.status)
        params["errors"].append(call.error)
        params["requests"].append(_json(call.request))
        params["responses"].append(_json(call.response))
        params["request_models"].append(call.request_model)
        params["response_models"].append(call.response_model)
        params["started"].append(call.started_at)
    return params
