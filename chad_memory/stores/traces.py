"""Spans into run history, a whole export at a time, in one transaction of a few statements.

How the rules of OTLP ingestion are kept (see chad_memory/otlp for the mapping):

- One run per (actor, trace id): runs are upserted on `uq_runs_actor_trace_id`. The
  upsert locks each run row until commit, so two exports of one trace take turns, and
  runs are upserted in trace-id order so two exports cannot deadlock on each other.
- A re-sent span is stored once: a step's id is derived from its run and span
  (`span_step_id`: uuid5 in the run's id), so a repeat hits `ON CONFLICT (id) DO NOTHING`.
  The LLM call of an LLM span is derived the same way and only written with a new step.
- A child may arrive before its parent. Its parent_step_id is set when the parent is in
  the same export or already stored; otherwise it stays null (the column is a foreign
  key) until the parent arrives, when the parent's insert links its waiting children.
- step_index is start-time order within the run: new steps go in at temporary indexes
  far above any real one, then every step of the touched runs whose index is off moves,
  through a second temporary range, to its rank by (started_at, roots first,
  completed_at desc, id).
  Indexes of a trace's steps can therefore change while spans are still arriving.
- Conversations: a span's `gen_ai.conversation.id` (or `session.id`) names a thread
  whose id is derived from (actor, conversation id) (`conversation_thread_id`); the
  thread is created on first sight and the run linked to it, so GET /runs?conversation_id=
  and GET /threads/{id}/runs list a conversation's runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from chad_memory.stores.transactions import SessionFactory, retried, transaction

if TYPE_CHECKING:  # the mapping imports the stores' package; only its type is needed here
    from chad_memory.otlp.mapping import MappedSpan

# uuid5 namespace of conversation threads (any fixed uuid; this one is uuid5(URL, ...)).
CONVERSATION_NAMESPACE = uuid.UUID("0d8e1f3a-6f5c-5b9a-9a44-6d0c7c2e9b11")
# Temporary step indexes: new steps at TEMP_NEW + i, moved steps at TEMP_MOVED + rank.
# Both far above any real index and apart from each other (a request holds < 2**29 spans).
TEMP_NEW = 2**30
TEMP_MOVED = 2**30 + 2**29


def conversation_thread_id(actor: str, conversation_id: str) -> uuid.UUID:
    """The thread holding an actor's conversation: the same id on every export."""
    return uuid.uuid5(CONVERSATION_NAMESPACE, f"{actor}\x00{conversation_id}")


def span_step_id(run_id: uuid.UUID, span_id: str) -> uuid.UUID:
    return uuid.uuid5(run_id, span_id)


def span_call_id(run_id: uuid.UUID, span_id: str) -> uuid.UUID:
    return uuid.uuid5(run_id, f"llm:{span_id}")


@dataclass(frozen=True)
class SavedSpans:
    """What an export did: steps newly stored, and spans that were already there."""

    stored: int
    duplicates: int


def _json(value: Any) -> str:
    return json.dumps(value)


_UPSERT_THREADS = text(
    "INSERT INTO threads (id, actor, title, agent_type, metadata) "
    "SELECT u.id, :actor, u.title, u.agent_type, u.metadata "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:agents AS text[]), "
    "CAST(:metadata AS jsonb[])) AS u(id, title, agent_type, metadata) "
    "ON CONFLICT (id) DO NOTHING"
)

# The no-op update makes RETURNING give the existing run's id, and locks it until commit.
_UPSERT_RUNS = text(
    "INSERT INTO runs (id, actor, trace_id, status, agent, thread_id, started_at, metadata) "
    "SELECT u.id, :actor, u.trace_id, 'running', u.agent, u.thread_id, u.started_at, u.metadata "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:trace_ids AS text[]), CAST(:agents AS text[]), "
    "CAST(:thread_ids AS uuid[]), CAST(:started AS timestamptz[]), CAST(:metadata AS jsonb[])) "
    "AS u(id, trace_id, agent, thread_id, started_at, metadata) "
    "ON CONFLICT (actor, trace_id) DO UPDATE SET "
    "thread_id = COALESCE(runs.thread_id, EXCLUDED.thread_id), updated_at = now() "
    "RETURNING id, trace_id, (xmax = 0) AS inserted"
)

# The root span decides the run's name, times and outcome, unless it already ended.
_ROOT_UPDATE = text(
    "UPDATE runs SET name = u.name, status = u.status, error = u.error, "
    "started_at = COALESCE(u.started_at, runs.started_at), completed_at = u.completed_at, "
    "updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:statuses AS text[]), "
    "CAST(:errors AS text[]), CAST(:started AS timestamptz[]), "
    "CAST(:completed AS timestamptz[])) AS u(id, name, status, error, started_at, completed_at) "
    "WHERE runs.id = u.id AND runs.status IN ('pending', 'running')"
)

_INSERT_STEPS = text(
    "INSERT INTO steps (id, run_id, step_index, parent_step_id, name, type, status, input, "
    "output, error, started_at, completed_at, duration_ms, metadata) "
    "SELECT u.id, u.run_id, u.step_index, "
    "COALESCE(u.parent, (SELECT p.id FROM steps p WHERE p.id = u.maybe_parent)), "
    "u.name, u.type, u.status, u.input, u.output, u.error, u.started_at, u.completed_at, "
    "u.duration_ms, u.metadata "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:run_ids AS uuid[]), CAST(:indexes AS int4[]), "
    "CAST(:parents AS uuid[]), CAST(:maybe_parents AS uuid[]), CAST(:names AS text[]), "
    "CAST(:types AS text[]), CAST(:statuses AS text[]), CAST(:inputs AS jsonb[]), "
    "CAST(:outputs AS jsonb[]), CAST(:errors AS text[]), CAST(:started AS timestamptz[]), "
    "CAST(:completed AS timestamptz[]), CAST(:durations AS float8[]), "
    "CAST(:metadata AS jsonb[])) AS u(id, run_id, step_index, parent, maybe_parent, name, "
    "type, status, input, output, error, started_at, completed_at, duration_ms, metadata) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)

# Children stored before their parent: linked now that the parent is here.
_LINK_CHILDREN = text(
    "UPDATE steps AS c SET parent_step_id = u.id "
    "FROM unnest(CAST(:run_ids AS uuid[]), CAST(:span_ids AS text[]), CAST(:ids AS uuid[])) "
    "AS u(run_id, span_id, id) "
    "WHERE c.run_id = u.run_id AND c.parent_step_id IS NULL "
    "AND c.metadata -> 'otel' ->> 'parent_span_id' = u.span_id"
)

_INSERT_CALLS = text(
    "INSERT INTO llm_calls (id, run_id, step_id, provider, model, prompt_tokens, "
    "completion_tokens, total_tokens, cost_usd, latency_ms, status, error, request, response) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:run_ids AS uuid[]), "
    "CAST(:step_ids AS uuid[]), CAST(:providers AS text[]), CAST(:models AS text[]), "
    "CAST(:prompt AS int4[]), CAST(:completion AS int4[]), CAST(:total AS int4[]), "
    "CAST(:costs AS numeric[]), CAST(:latencies AS float8[]), CAST(:statuses AS text[]), "
    "CAST(:errors AS text[]), CAST(:requests AS jsonb[]), CAST(:responses AS jsonb[])) "
    "ON CONFLICT (id) DO NOTHING"
)

_RANK_STEPS = text(
    "WITH ranked AS (SELECT id, step_index, (row_number() OVER (PARTITION BY run_id "
    "ORDER BY started_at NULLS LAST, parent_step_id IS NOT NULL, completed_at DESC NULLS LAST, "
    "id) - 1)::int4 AS rank "
    "FROM steps WHERE run_id = ANY(CAST(:run_ids AS uuid[]))) "
    f"UPDATE steps SET step_index = {TEMP_MOVED} + ranked.rank FROM ranked "
    "WHERE steps.id = ranked.id AND ranked.step_index <> ranked.rank"
)
_SETTLE_STEPS = text(
    f"UPDATE steps SET step_index = step_index - {TEMP_MOVED} "
    f"WHERE run_id = ANY(CAST(:run_ids AS uuid[])) AND step_index >= {TEMP_MOVED}"
)


class TraceStore:
    """Spans as runs, steps and LLM calls; one export is one transaction."""

    def __init__(self, session_factory: SessionFactory) -> None:
        self._sessions = session_factory

    @retried
    async def save_spans(self, traces: dict[str, list[MappedSpan]], *, actor: str) -> SavedSpans:
        """Store mapped spans for `actor`: all of them or, on an error, none."""
        trace_ids = sorted(traces)
        if not trace_ids:
            return SavedSpans(0, 0)
        async with transaction(self._sessions, "save_spans") as session:

            async def run(stmt: Any, **params: Any) -> Any:
                return await session.execute(stmt, params)

            threads = _threads(traces, trace_ids, actor)
            if threads:
                await run(_UPSERT_THREADS, actor=actor, **threads)
            rows = (await run(_UPSERT_RUNS, actor=actor, **_runs(traces, trace_ids, actor))).all()
            run_ids = {row.trace_id: row.id for row in rows}
            existing_runs = {row.id for row in rows if not row.inserted}
            roots = _roots(traces, run_ids)
            if roots["ids"]:
                await run(_ROOT_UPDATE, **roots)

            steps, spans = _steps(traces, trace_ids, run_ids)
            new_ids = set((await run(_INSERT_STEPS, **steps)).scalars())
            new = [
                (span, steps["ids"][i])
                for i, span in enumerate(spans)
                if steps["ids"][i] in new_ids
            ]
            waiting = [
                (run_ids[s.trace_id], s.span_id, i)
                for s, i in new
                if run_ids[s.trace_id] in existing_runs
            ]
            if waiting:
                await run(
                    _LINK_CHILDREN,
                    run_ids=[w[0] for w in waiting],
                    span_ids=[w[1] for w in waiting],
                    ids=[w[2] for w in waiting],
                )
            calls = _calls([(s, i, run_ids[s.trace_id]) for s, i in new if s.call is not None])
            if calls["ids"]:
                await run(_INSERT_CALLS, **calls)
            touched = sorted({run_ids[s.trace_id] for s, _ in new})
            if touched:
                await run(_RANK_STEPS, run_ids=touched)
                await run(_SETTLE_STEPS, run_ids=touched)
        return SavedSpans(stored=len(new), duplicates=len(spans) - len(new))


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
        k: [] for k in ("ids", "names", "statuses", "errors", "started", "completed")
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
    return params


def _steps(
    traces: dict[str, list[MappedSpan]], trace_ids: list[str], run_ids: dict[str, uuid.UUID]
) -> tuple[dict[str, list[Any]], list[MappedSpan]]:
    names = [
        "ids",
        "run_ids",
        "indexes",
        "parents",
        "maybe_parents",
        "names",
        "types",
        "statuses",
        "inputs",
        "outputs",
        "errors",
        "started",
        "completed",
        "durations",
        "metadata",
    ]
    params: dict[str, list[Any]] = {k: [] for k in names}
    spans: list[MappedSpan] = []
    for trace_id in trace_ids:
        run_id = run_ids[trace_id]
        here = {s.span_id for s in traces[trace_id]}
        for span in traces[trace_id]:
            step = span.step
            parent = None
            maybe = None
            if span.parent_span_id is not None:
                parent_id = span_step_id(run_id, span.parent_span_id)
                parent, maybe = (
                    (parent_id, None) if span.parent_span_id in here else (None, parent_id)
                )
            params["ids"].append(span_step_id(run_id, span.span_id))
            params["run_ids"].append(run_id)
            params["indexes"].append(TEMP_NEW + len(spans))
            params["parents"].append(parent)
            params["maybe_parents"].append(maybe)
            params["names"].append(step.name)
            params["types"].append(step.type)
            params["statuses"].append(step.status)
            params["inputs"].append(_json(step.input))
            params["outputs"].append(_json(step.output))
            params["errors"].append(step.error)
            params["started"].append(step.started_at)
            params["completed"].append(step.completed_at)
            params["durations"].append(step.duration_ms)
            params["metadata"].append(_json(step.metadata))
            spans.append(span)
    return params, spans


def _calls(new: Sequence[tuple[MappedSpan, uuid.UUID, uuid.UUID]]) -> dict[str, list[Any]]:
    names = [
        "ids",
        "run_ids",
        "step_ids",
        "providers",
        "models",
        "prompt",
        "completion",
        "total",
        "costs",
        "latencies",
        "statuses",
        "errors",
        "requests",
        "responses",
    ]
    params: dict[str, list[Any]] = {k: [] for k in names}
    for span, step_id, run_id in new:
        call = span.call
        assert call is not None
        params["ids"].append(span_call_id(run_id, span.span_id))
        params["run_ids"].append(run_id)
        params["step_ids"].append(step_id)
        params["providers"].append(call.provider)
        params["models"].append(call.model)
        params["prompt"].append(call.prompt_tokens)
        params["completion"].append(call.completion_tokens)
        total = call.total_tokens
        params["total"].append(
            call.prompt_tokens + call.completion_tokens if total is None else total
        )
        params["costs"].append(call.cost_usd)
        params["latencies"].append(call.latency_ms)
        params["statuses"].append(call.status)
        params["errors"].append(call.error)
        params["requests"].append(_json(call.request))
        params["responses"].append(_json(call.response))
    return params
