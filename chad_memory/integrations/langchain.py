"""A LangChain callback handler that records every top-level invocation as a chad-memory run.

    tracer = ChadMemoryTracer(store, actor="alice")      # a PostgresStore
    chain.invoke(inputs, config={"callbacks": [tracer]})
    tracer.flush()                                         # or: await tracer.aflush()

Each top-level runnable becomes a run (its name, input as request_payload, output as
result, status succeeded/failed with the error); every nested chain, chat model, LLM,
tool, retriever, prompt and parser call becomes a step whose parent_step_id follows
LangChain's parent_run_id; every chat model / LLM call is also an LLM call with provider
and request model (LangChain's `ls_provider` / `ls_model_name` metadata), the response
model (the message's `response_metadata.model_name`), its start time, token counts from
`AIMessage.usage_metadata` (`input_tokens`, `output_tokens`, `total_tokens`, and
`input_token_details.cache_read` / `cache_creation`, `output_token_details.reasoning` as
cached_tokens / cache_write_tokens / reasoning_tokens) and latency; the store prices it
like any other call (chad_memory.prices). Ids are the store's (the HTTP service assigns
them); LangChain's top-level run id is the run's idempotency key.

Nothing is written while the invocation runs: when the top-level run ends, its whole tree
is turned into records and written in a few calls: the run, its steps level by level (a
parent's stored id is known before its children are sent) in batches of STEP_BATCH, its
LLM calls (one call each unless the target has `save_llm_calls`). The writes happen off
the traced program's path, on its own event loop as a task (async invocations) or on the
loop the tracer was created on / a private loop thread (sync ones); a blocking target's
methods run on a worker thread. A failed write is logged and dropped; the chain's result
and exceptions are never touched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, runtime_checkable

from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from pydantic import ValidationError

from chad_memory.errors import InvalidInputError
from chad_memory.integrations.langchain_runs import (
    clean_text,
    duration_ms,
    plain,
    response_model,
    response_of,
    run_metadata,
    run_status,
    short_text,
    step_type,
    token_usage,
)
from chad_memory.integrations.loop_thread import LoopThread
from chad_memory.schemas import LLMCallCreate, RunCreate, RunUpdate, StepCreate
from chad_memory.stores.runs import PostgresStore
from chad_memory.validation import text_problem

logger = logging.getLogger(__name__)

__all__ = ["ChadMemoryTracer", "RunTarget"]

STEP_BATCH = 500
MAX_TAGS = 64
# Set by the HTTP clients, whose server decides the actor; RunCreate still needs one.
CLIENT_ACTOR = "client"


@runtime_checkable
class RunTarget(Protocol):
    """What the tracer writes to: PostgresStore and chad-memory's HTTP clients alike."""

    def save_run(self, run: RunCreate) -> Awaitable[Any] | Any: ...

    def update_run(self, run_id: uuid.UUID, changes: RunUpdate) -> Awaitable[Any] | Any: ...

    def save_steps(self, steps: Sequence[StepCreate]) -> Awaitable[Any] | Any: ...

    def save_llm_call(self, call: LLMCallCreate) -> Awaitable[Any] | Any: ...


class _Records:
    """One finished top-level run as the calls that store it."""

    def __init__(self, root: Run, actor: str) -> None:
        metadata = run_metadata(root)
        self.root_id = root.id
        self.thread = metadata.get("thread_id")
        tags = [t for t in (short_text(t) for t in (root.tags or [])) if t][:MAX_TAGS]
        # No ids are chosen here (the HTTP service assigns them): LangChain's run id is the
        # idempotency key, so a retried create returns the first run.
        self.run = RunCreate(
            actor=actor,
            idempotency_key=str(root.id),
            name=short_text(root.name),
            status="failed" if root.error else "succeeded",
            request_payload=plain(root.inputs),
            result=plain(root.outputs),
            error=clean_text(root.error),
            metadata=metadata,
            tags=tags,
            started_at=root.start_time,
            completed_at=root.end_time,
        )
        self.thread_uuid: uuid.UUID | None = None
        if self.thread is not None:
            try:
                self.thread_uuid = uuid.UUID(str(self.thread))
            except ValueError:
                self.thread_uuid = None
        descendants: list[tuple[Run, int]] = []
        stack = [(child, 1) for child in reversed(root.child_runs)]
        while stack:
            run, depth = stack.pop()
            descendants.append((run, depth))
            stack.extend((child, depth + 1) for child in reversed(run.child_runs))
        # step_index is start order; ids and run_id here are LangChain's, swapped for the
        # stored ones when written (see ChadMemoryTracer._write).
        descendants.sort(key=lambda d: (d[0].dotted_order or "", d[0].start_time))
        self.steps: list[StepCreate] = []
        self.depths: list[int] = []
        self.calls: list[LLMCallCreate] = []
        for index, (run, depth) in enumerate(descendants):
            self.depths.append(depth)
            parent = run.parent_run_id if run.parent_run_id != root.id else None
            self.steps.append(
                StepCreate(
                    id=run.id,
                    run_id=root.id,
                    step_index=index,
                    parent_step_id=parent,
                    name=short_text(run.name),
                    type=step_type(run),
                    status="failed" if run.error else "succeeded",
                    input=plain(run.inputs),
                    output=plain(run.outputs),
                    error=clean_text(run.error),
                    started_at=run.start_time,
                    completed_at=run.end_time,
                    duration_ms=duration_ms(run),
                    metadata=run_metadata(run),
                )
            )
            if run.run_type in ("llm", "chat_model"):
                self.calls.append(self._call(root, run))

    def _call(self, root: Run, run: Run) -> LLMCallCreate:
        metadata = run_metadata(run)
        usage = token_usage(run)
        request: dict[str, Any] = {"input": plain(run.inputs)}
        params = (run.extra or {}).get("invocation_params")
        if params:
            request["invocation_params"] = plain(params)
        if self.thread is not None:
            request["thread_id"] = plain(self.thread)
        total = usage["total"] or None
        if total is not None and total < usage["input"] + usage["output"]:
            total = None
        fields: dict[str, Any] = {
            "run_id": root.id,
            "step_id": run.id,
            "provider": short_text(metadata.get("ls_provider")),
            "request_model": short_text(metadata.get("ls_model_name")),
            "response_model": response_model(run),
            "prompt_tokens": usage["input"],
            "completion_tokens": usage["output"],
            "total_tokens": total,
            "latency_ms": duration_ms(run),
            "started_at": run.start_time,
            "status": run_status(run),
            "error": clean_text(run.error),
            "response": response_of(run),
        }
        parts = {
            "cached_tokens": usage["cache_read"],
            "cache_write_tokens": usage["cache_write"],
            "reasoning_tokens": usage["reasoning"],
        }
        try:
            return LLMCallCreate(**fields, **parts, request=request)
        except ValidationError as exc:
            if not any(parts.values()):
                raise
            problem = exc.errors(include_url=False)[0]["msg"]
        # Parts larger than the totals they belong to break the OpenTelemetry rule the
        # columns keep: the call is stored without them, the counts kept as reported.
        logger.warning("chad-memory tracer: LLM call %s: %s", run.id, problem)
        kept: dict[str, Any] = {k: usage[k] for k in ("cache_read", "cache_write", "reasoning")}
        request["usage_not_stored"] = {**kept, "reason": problem}
        return LLMCallCreate(**fields, request=request)


class ChadMemoryTracer(BaseTracer):
    """Records LangChain invocations in chad-memory; pass it in `config={"callbacks": [...]}`.

    Args:
        target: a `PostgresStore` (then `actor` is required) or a chad-memory HTTP client
            (`ChadMemoryClient` / `AsyncChadMemoryClient`; the API key decides the actor).
        actor: who owns the recorded runs, for a PostgresStore.
    """

    run_inline = True  # bookkeeping only; the writes happen elsewhere

    def __init__(self, target: Any, *, actor: str | None = None) -> None:
        super().__init__(_schema_format="original+chat")
        if not isinstance(target, RunTarget):
            raise InvalidInputError(
                "target must be a PostgresStore or a chad-memory client "
                "(save_run, update_run, save_steps, save_llm_call)"
            )
        if isinstance(target, PostgresStore) and not actor:
            raise InvalidInputError("actor is required when the target is a PostgresStore")
        if actor is not None and (not isinstance(actor, str) or text_problem(actor)):
            raise InvalidInputError("actor must be a non-empty string")
        self.target = target
        self.actor = actor or CLIENT_ACTOR
        try:
            self._home: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._home = None
        self._private: LoopThread | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Future[None]] = set()
        self._futures: set[concurrent.futures.Future[None]] = set()
        self.failures = 0
        # The stored runs, in the order they were stored, and the stored run of each
        # LangChain run id: what feedback is attached to (`client.score(run_id, ...)`).
        self.run_ids: list[uuid.UUID] = []
        self.recorded: dict[uuid.UUID, uuid.UUID] = {}

    # LangChain's hook: the top-level run has ended --------------------------------------

    def _persist_run(self, run: Run) -> None:
        try:
            records = _Records(run, self.actor)
        except Exception:
            self.failures += 1
            logger.exception("chad-memory tracer could not record run %s", run.id)
            return
        self._submit(self._write(records))

    def _submit(self, write: Coroutine[Any, Any, None]) -> None:
        """Start the write without waiting: on this thread's loop, else the home loop,
        else a private loop thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            if running is not None:
                task = running.create_task(write)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            loop = self._home
            if loop is None or loop.is_closed() or not loop.is_running():
                if self._private is None:
                    self._private = LoopThread("chad-memory-tracer")
                loop = self._private.loop
            future = asyncio.run_coroutine_threadsafe(write, loop)
            self._futures.add(future)
            future.add_done_callback(self._futures.discard)

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Await an async target's method; run a sync one (a blocking HTTP client) on a
        worker thread, so the event loop of the traced program never waits on it."""
        if inspect.iscoroutinefunction(method):
            return await method(*args)
        result = await asyncio.to_thread(method, *args)
        return await result if isinstance(result, Awaitable) else result

    async def _write(self, records: _Records) -> None:
        try:
            run = records.run
            try:
                if records.thread_uuid is not None:
                    linked = run.model_copy(update={"thread_id": records.thread_uuid})
                    saved = await self._call(self.target.save_run, linked)
                else:
                    saved = await self._call(self.target.save_run, run)
            except Exception:
                if records.thread_uuid is None:
                    raise
                # The thread id names no thread of this actor: keep it in metadata only.
                saved = await self._call(self.target.save_run, run)
            with self._lock:
                self.run_ids.append(saved.id)
                self.recorded[records.root_id] = saved.id
            stored = await self._save_steps(records, saved.id)
            calls = [
                c.model_copy(update={"run_id": saved.id, "step_id": stored.get(c.step_id)})
                for c in records.calls
            ]
            many = getattr(self.target, "save_llm_calls", None)
            if many is not None and calls:
                await self._call(many, calls)
            else:
                for call in calls:
                    await self._call(self.target.save_llm_call, call)
        except Exception:
            self.failures += 1
            logger.exception("chad-memory tracer could not store run %s", records.run.id)

    async def _save_steps(self, records: _Records, run_id: uuid.UUID) -> dict[Any, uuid.UUID]:
        """Save the steps level by level (a parent's stored id is known before its
        children are sent), STEP_BATCH a call; returns LangChain id -> stored id."""
        stored: dict[Any, uuid.UUID] = {}
        levels: dict[int, list[StepCreate]] = {}
        for step, depth in zip(records.steps, records.depths, strict=True):
            levels.setdefault(depth, []).append(step)
        for depth in sorted(levels):
            level = levels[depth]
            for start in range(0, len(level), STEP_BATCH):
                chunk = level[start : start + STEP_BATCH]
                batch = [
                    step.model_copy(
                        update={
                            "id": None,
                            "run_id": run_id,
                            "parent_step_id": stored.get(step.parent_step_id),
                        }
                    )
                    for step in chunk
                ]
                saved = await self._call(self.target.save_steps, batch)
                for step, record in zip(chunk, saved, strict=True):
                    stored[step.id] = record.id
        return stored

    # Waiting for the writes ----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Return once every run recorded so far is stored (or its failure logged).

        For sync programs; async code awaits `aflush()` (waiting here on the loop that
        runs the writes would deadlock, so that is refused).
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            tasks = set(self._tasks)
            futures = set(self._futures)
        if running is not None and (tasks or (futures and running is self._home)):
            raise RuntimeError("flush() would block the event loop; use `await tracer.aflush()`")
        concurrent.futures.wait(futures, timeout=timeout)

    async def aflush(self) -> None:
        """Await every write started so far, on any loop or thread."""
        while True:
            with self._lock:
                tasks = set(self._tasks)
                futures = set(self._futures)
            if not tasks and not futures:
                return
            waits: list[Awaitable[Any]] = list(tasks)
            waits += [asyncio.wrap_future(f) for f in futures]
            await asyncio.gather(*waits, return_exceptions=True)
