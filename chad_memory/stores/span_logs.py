"""GenAI log events onto their spans' steps and LLM calls, whichever arrives first.

`SpanLogStore.save_logs` stores one export of mapped log records (chad_memory.otlp.logs)
in one transaction: it upserts each trace's run as a span export does (`UPSERT_RUNS`,
which locks the run row until commit, so a log export and a span export of one trace
take turns), keeps records that belong to no span on the run (`metadata.otel.logs`),
and applies each span's content to its step and LLM call (ids derived from run and span,
as the span path derives them). Content for a span not stored yet waits in
`pending_span_content`; the span's export applies it (`attach_pending`, called by
TraceStore.save_spans) and deletes it.

How content lands: the messages fill a step's `input` / `output` that the span left
empty (null); later events for the same span append to what earlier events put there
(noted in `metadata.otel.content_from_logs`), and never overwrite what the span itself
carried. The LLM call gets them as `request.input_messages` / `response.output_messages`,
and a root span's step gives them to its run as `request_payload` / `result`. Every
record read is kept under the step's `metadata.otel.logs`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chad_memory.stores.base import Store
from chad_memory.stores.trace_order import span_call_id, span_step_id
from chad_memory.stores.trace_runs import UPSERT_RUNS
from chad_memory.stores.transactions import retried, transaction
from chad_memory.validation import check_actor

if TYPE_CHECKING:  # the mapping imports the stores' package; only its type is needed here
    from chad_memory.otlp.logs import MappedLogs


@dataclass
class SpanContent:
    """What a span's GenAI events said: messages in, messages out, and the records."""

    input: list[Any] = field(default_factory=list)
    output: list[Any] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


_UNNEST_CONTENT = (
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:inputs AS jsonb[]), CAST(:outputs AS jsonb[]), "
    "CAST(:records AS jsonb[])) AS u(id, input, output, records) "
)


def _side(column: str, side: str) -> str:
    """The step's new `column`: filled when empty, appended when earlier logs filled it."""
    return (
        f"CASE WHEN u.{column} = '[]' THEN s.{column} "
        f"WHEN s.{column} IS NULL OR s.{column} = 'null' THEN u.{column} "
        f"WHEN s.metadata #> '{{otel,content_from_logs}}' ? '{side}' "
        f"THEN s.{column} || u.{column} ELSE s.{column} END"
    )


def _filled(column: str, side: str) -> str:
    return (
        f"CASE WHEN u.{column} <> '[]' AND (s.{column} IS NULL OR s.{column} = 'null') "
        f"THEN '[\"{side}\"]'::jsonb ELSE '[]'::jsonb END"
    )


_APPLY_TO_STEPS = text(
    f"UPDATE steps AS s SET input = {_side('input', 'input')}, "
    f"output = {_side('output', 'output')}, "
    "metadata = s.metadata || jsonb_build_object('otel', COALESCE(s.metadata -> 'otel', '{}') "
    "|| jsonb_build_object("
    "'logs', COALESCE(s.metadata #> '{otel,logs}', '[]') || u.records, "
    "'content_from_logs', COALESCE(s.metadata #> '{otel,content_from_logs}', '[]') "
    f"|| {_filled('input', 'input')} || {_filled('output', 'output')})) "
    f"{_UNNEST_CONTENT}WHERE s.id = u.id "
    "RETURNING s.id, (s.metadata #> '{otel,parent_span_id}') IS NULL AS root"
)

# A root span's content is its run's request and result, as when the span carries it.
_ROOT_TO_RUNS = text(
    "UPDATE runs SET request_payload = NULLIF(s.input, 'null'), "
    "result = NULLIF(s.output, 'null'), updated_at = now() "
    "FROM steps s WHERE s.id = ANY(CAST(:ids AS uuid[])) AND runs.id = s.run_id"
)


def _call_side(column: str, key: str, content: str) -> str:
    return (
        f"CASE WHEN u.{content} = '[]' THEN c.{column} "
        f"WHEN c.{column} IS NULL OR c.{column} = 'null' "
        f"THEN jsonb_build_object('{key}', u.{content}) "
        f"WHEN jsonb_typeof(c.{column}) = 'object' THEN c.{column} || jsonb_build_object("
        f"'{key}', COALESCE(c.{column} -> '{key}', '[]') || u.{content}) "
        f"ELSE c.{column} END"
    )


_APPLY_TO_CALLS = text(
    f"UPDATE llm_calls AS c SET request = {_call_side('request', 'input_messages', 'input')}, "
    f"response = {_call_side('response', 'output_messages', 'output')} "
    f"{_UNNEST_CONTENT}WHERE c.id = u.id"
)

_PEND = text(
    "INSERT INTO pending_span_content AS p (run_id, span_id, input, output, records) "
    "SELECT * FROM unnest(CAST(:run_ids AS uuid[]), CAST(:span_ids AS text[]), "
    "CAST(:inputs AS jsonb[]), CAST(:outputs AS jsonb[]), CAST(:records AS jsonb[])) "
    "ON CONFLICT (run_id, span_id) DO UPDATE SET input = p.input || EXCLUDED.input, "
    "output = p.output || EXCLUDED.output, records = p.records || EXCLUDED.records"
)

_TAKE_PENDING = text(
    "DELETE FROM pending_span_content AS p "
    "USING unnest(CAST(:run_ids AS uuid[]), CAST(:span_ids AS text[])) AS u(run_id, span_id) "
    "WHERE p.run_id = u.run_id AND p.span_id = u.span_id "
    "RETURNING p.run_id, p.span_id, p.input, p.output, p.records"
)

_KEEP_ON_RUN = text(
    "UPDATE runs SET metadata = runs.metadata || jsonb_build_object('otel', "
    "COALESCE(runs.metadata -> 'otel', '{}') || jsonb_build_object('logs', "
    "COALESCE(runs.metadata #> '{otel,logs}', '[]') || u.records)), updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:records AS jsonb[])) AS u(id, records) "
    "WHERE runs.id = u.id"
)

# One span's content: (run id, span id, content).
Attached = tuple[uuid.UUID, str, SpanContent]


@dataclass(frozen=True)
class SavedLogs:
    """What a log export did: content applied to stored spans, content left waiting for
    its span, and records kept on their runs."""

    applied: int
    waiting: int
    kept_on_runs: int


async def apply_content(session: AsyncSession, contents: Sequence[Attached]) -> set[uuid.UUID]:
    """Apply content to the stored steps (and their calls); the step ids it reached."""
    step_ids = [span_step_id(run_id, span_id) for run_id, span_id, _ in contents]
    params = _content_params(contents)
    rows = (await session.execute(_APPLY_TO_STEPS, {"ids": step_ids, **params})).all()
    reached = {row.id for row in rows}
    if reached:
        call_ids = [span_call_id(run_id, span_id) for run_id, span_id, _ in contents]
        await session.execute(_APPLY_TO_CALLS, {"ids": call_ids, **params})
    roots = [row.id for row in rows if row.root]
    if roots:
        await session.execute(_ROOT_TO_RUNS, {"ids": roots})
    return reached


async def attach_pending(session: AsyncSession, new_steps: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Apply (and delete) the content waiting for spans whose steps were just stored."""
    rows = (
        await session.execute(
            _TAKE_PENDING,
            {"run_ids": [r for r, _ in new_steps], "span_ids": [s for _, s in new_steps]},
        )
    ).all()
    if rows:
        contents = [(r.run_id, r.span_id, SpanContent(r.input, r.output, r.records)) for r in rows]
        await apply_content(session, contents)


def _content_params(contents: Sequence[Attached]) -> dict[str, list[str]]:
    return {
        "inputs": [json.dumps(content.input) for _, _, content in contents],
        "outputs": [json.dumps(content.output) for _, _, content in contents],
        "records": [json.dumps(content.records) for _, _, content in contents],
    }


class SpanLogStore(Store):
    """GenAI log events as span content; one export is one transaction."""

    @retried
    async def save_logs(self, mapped: MappedLogs, *, actor: str) -> SavedLogs:
        trace_ids = mapped.trace_ids
        if not trace_ids:
            return SavedLogs(0, 0, 0)
        check_actor(actor)
        async with transaction(self._db, "save_logs") as session:
            runs = await session.execute(UPSERT_RUNS, _runs(mapped, trace_ids, actor))
            run_ids = {row.trace_id: row.id for row in runs}
            if mapped.runs:
                on_runs = sorted(mapped.runs)
                await session.execute(
                    _KEEP_ON_RUN,
                    {
                        "ids": [run_ids[t] for t in on_runs],
                        "records": [json.dumps(mapped.runs[t]) for t in on_runs],
                    },
                )
            contents = [
                (run_ids[trace_id], span_id, content)
                for (trace_id, span_id), content in sorted(mapped.spans.items())
            ]
            reached = await apply_content(session, contents) if contents else set()
            waiting = [x for x in contents if span_step_id(x[0], x[1]) not in reached]
            if waiting:
                await session.execute(
                    _PEND,
                    {
                        "run_ids": [run_id for run_id, _, _ in waiting],
                        "span_ids": [span_id for _, span_id, _ in waiting],
                        **_content_params(waiting),
                    },
                )
        kept = sum(len(records) for records in mapped.runs.values())
        self._db.ingested("log_records", kept + sum(len(c.records) for _, _, c in contents))
        return SavedLogs(len(reached), len(waiting), kept)


def _runs(mapped: MappedLogs, trace_ids: list[str], actor: str) -> dict[str, Any]:
    agents = []
    for trace_id in trace_ids:
        agent = mapped.resources.get(trace_id, {}).get("service.name")
        agents.append(agent if isinstance(agent, str) and 1 <= len(agent) <= 512 else None)
    return {
        "actor": actor,
        "ids": [uuid.uuid4() for _ in trace_ids],
        "trace_ids": trace_ids,
        "agents": agents,
        "thread_ids": [None] * len(trace_ids),
        "started": [None] * len(trace_ids),
        "metadata": [
            json.dumps({"otel": {"resource": mapped.resources.get(t, {})}}) for t in trace_ids
        ],
    }
