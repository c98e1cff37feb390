"""The run of a trace: one per (actor, trace id), upserted by every OTLP export.

Span exports (chad_memory.stores.traces) and log exports (chad_memory.stores.span_logs)
both start by upserting their traces' runs on `uq_runs_actor_trace_id`, in trace-id
order. The no-op update makes RETURNING give an existing run's id and locks the run row
until commit, so two exports of one trace, of spans or of logs, take turns and cannot
deadlock on each other.
"""

from __future__ import annotations

from sqlalchemy import text

# The no-op update makes RETURNING give the existing run's id, and locks it until commit.
UPSERT_RUNS = text(
    "INSERT INTO runs (id, actor, trace_id, status, agent, thread_id, started_at, metadata) "
    "SELECT u.id, :actor, u.trace_id, 'running', u.agent, u.thread_id, u.started_at, u.metadata "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:trace_ids AS text[]), CAST(:agents AS text[]), "
    "CAST(:thread_ids AS uuid[]), CAST(:started AS timestamptz[]), CAST(:metadata AS jsonb[])) "
    "AS u(id, trace_id, agent, thread_id, started_at, metadata) "
    "ON CONFLICT (actor, trace_id) DO UPDATE SET "
    "thread_id = COALESCE(runs.thread_id, EXCLUDED.thread_id), updated_at = now() "
    "RETURNING id, trace_id, (xmax = 0) AS inserted"
)
