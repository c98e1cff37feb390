"""`AsyncChadMemoryClient`: `ChadMemoryClient` for asyncio (same methods, awaited)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from chad_memory.client import calls
from chad_memory.client.transport import (
    NOT_SENT,
    RetryPolicy,
    build_request,
    client_options,
    finish,
    should_retry,
    unreachable,
)
from chad_memory.schemas import (
    ArtifactCreate,
    ArtifactRecord,
    EmbeddingCreate,
    EmbeddingRecord,
    LLMCallCreate,
    LLMCallRecord,
    MemoryDetail,
    MessageCreate,
    MessageRecord,
    Page,
    RunCreate,
    RunFilter,
    RunMemory,
    RunRecord,
    RunStats,
    RunSummary,
    RunUpdate,
    ScoreConfigCreate,
    ScoreConfigRecord,
    ScoreCreate,
    ScoreFilter,
    ScoreRecord,
    SearchHit,
    StepCreate,
    StepRecord,
    ThreadCreate,
    ThreadRecord,
    ThreadUpdate,
)

T = TypeVar("T")


class AsyncChadMemoryClient:
    """`ChadMemoryClient`'s methods as coroutines; see its docstring for the rules."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_wait: float = 8.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff, cap=max_wait)
        self._http = httpx.AsyncClient(
            **client_options(base_url, api_key, timeout, headers), transport=transport
        )

    async def __aenter__(self) -> AsyncChadMemoryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.send(build_request(self._http, call))
            except NOT_SENT as exc:
                if attempt >= self.retry_policy.retries:
                    raise unreachable(call, exc) from exc
                await asyncio.sleep(self.retry_policy.wait(attempt))
                attempt += 1
                continue
            wait = should_retry(response, attempt, self.retry_policy)
            if wait is None:
                result: T = finish(call, response)
                return result
            await asyncio.sleep(wait)
            attempt += 1

    # Runs -----------------------------------------------------------------------------

    async def save_run(self, run: RunCreate) -> RunRecord:
        return await self._send(calls.save_run(run))

    async def get_run(self, run_id: uuid.UUID) -> RunRecord:
        return await self._send(calls.get_run(run_id))

    async def list_runs(
        self,
        filters: RunFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        exact_total: bool = False,
    ) -> Page[RunSummary]:
        return await self._send(calls.list_runs(filters, limit, offset, cursor, exact_total))

    async def count_runs(self, filters: RunFilter | None = None) -> int:
        return await self._send(calls.count_runs(filters))

    async def update_run(self, run_id: uuid.UUID, changes: RunUpdate) -> RunRecord:
        return await self._send(calls.update_run(run_id, changes))

    async def delete_run(self, run_id: uuid.UUID) -> None:
        await self._send(calls.delete_run(run_id))

    async def get_run_stats(self, run_id: uuid.UUID) -> RunStats:
        return await self._send(calls.get_run_stats(run_id))

    # Steps, LLM calls, artifacts ------------------------------------------------------

    async def save_step(self, step: StepCreate) -> StepRecord:
        return (await self.save_steps([step]))[0]

    async def save_steps(self, steps: Sequence[StepCreate]) -> list[StepRecord]:
        records: list[Any] = [None] * len(steps)
        for positions, call in calls.save_steps(steps):
            saved: list[StepRecord] = await self._send(call)
            for position, record in zip(positions, saved, strict=True):
                records[position] = record
        return records

    async def get_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        """Every one of the run's records, page after page (1,000 a request)."""
        records: list[StepRecord] = []
        cursor = None
        while True:
            page, cursor = await self._send(calls.get_steps(run_id, cursor))
            records += page
            if cursor is None:
                return records

    async def save_llm_call(self, call: LLMCallCreate) -> LLMCallRecord:
        return await self._send(calls.save_llm_call(call))

    async def get_llm_calls(self, run_id: uuid.UUID) -> list[LLMCallRecord]:
        """Every one of the run's records, page after page (1,000 a request)."""
        records: list[LLMCallRecord] = []
        cursor = None
        while True:
            page, cursor = await self._send(calls.get_llm_calls(run_id, cursor))
            records += page
            if cursor is None:
                return records

    async def save_artifact(self, artifact: ArtifactCreate) -> ArtifactRecord:
        return await self._send(calls.save_artifact(artifact))

    async def get_artifacts(self, run_id: uuid.UUID) -> list[ArtifactRecord]:
        """Every one of the run's records, page after page (1,000 a request)."""
        records: list[ArtifactRecord] = []
        cursor = None
        while True:
            page, cursor = await self._send(calls.get_artifacts(run_id, cursor))
            records += page
            if cursor is None:
                return records

    # Memory ---------------------------------------------------------------------------

    async def add_embedding(self, item: EmbeddingCreate) -> EmbeddingRecord:
        return (await self.add_embeddings([item]))[0]

    async def add_embeddings(self, items: Sequence[EmbeddingCreate]) -> list[EmbeddingRecord]:
        return [r for call in calls.add_embeddings(items) for r in await self._send(call)]

    async def search(
        self,
        embedding: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int = 10,
        namespace: str | None = None,
        source_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        min_score: float | None = None,
        run_id: uuid.UUID | None = None,
        step_id: uuid.UUID | None = None,
        as_of: datetime | None = None,
    ) -> list[SearchHit]:
        """By `embedding`, or `query` text the service embeds, among memories valid now
        (or at `as_of`); `run_id` records the hits as that run's reads."""
        return await self._send(
            calls.search(
                embedding,
                k,
                namespace,
                source_id,
                metadata,
                min_score,
                query=query,
                run_id=run_id,
                step_id=step_id,
                as_of=as_of,
            )
        )

    async def run_memory(self, run_id: uuid.UUID, *, limit: int = 50) -> RunMemory:
        """What the run wrote to memory and what its searches read."""
        return await self._send(calls.run_memory(run_id, limit))

    async def memory_detail(self, embedding_id: uuid.UUID, *, limit: int = 50) -> MemoryDetail:
        """One memory, the run that wrote it and the runs that read it."""
        return await self._send(calls.memory_detail(embedding_id, limit))

    async def delete_by_source(self, source_id: str) -> int:
        return await self._send(calls.delete_by_source(source_id))

    # Threads and messages -------------------------------------------------------------

    async def create_thread(self, thread: ThreadCreate) -> ThreadRecord:
        return await self._send(calls.create_thread(thread))

    async def get_thread(self, thread_id: uuid.UUID) -> ThreadRecord:
        return await self._send(calls.get_thread(thread_id))

    async def list_threads(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ThreadRecord]:
        return await self._send(calls.list_threads(limit, cursor))

    async def count_threads(self) -> int:
        return await self._send(calls.count_threads())

    async def update_thread(self, thread_id: uuid.UUID, changes: ThreadUpdate) -> ThreadRecord:
        return await self._send(calls.update_thread(thread_id, changes))

    async def delete_thread(self, thread_id: uuid.UUID) -> None:
        await self._send(calls.delete_thread(thread_id))

    async def add_message(self, thread_id: uuid.UUID, message: MessageCreate) -> MessageRecord:
        return (await self.add_messages(thread_id, [message]))[0]

    async def add_messages(
        self, thread_id: uuid.UUID, messages: Sequence[MessageCreate]
    ) -> list[MessageRecord]:
        return [
            r for call in calls.add_messages(thread_id, messages) for r in await self._send(call)
        ]

    async def list_messages(
        self, thread_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[MessageRecord]:
        return await self._send(calls.list_messages(thread_id, limit, cursor))

    async def count_messages(self, thread_id: uuid.UUID) -> int:
        return await self._send(calls.count_messages(thread_id))

    async def delete_message(self, message_id: uuid.UUID) -> None:
        await self._send(calls.delete_message(message_id))

    async def list_thread_runs(
        self, thread_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[RunRecord]:
        return await self._send(calls.list_thread_runs(thread_id, limit, cursor))

    # Scores ---------------------------------------------------------------------------

    async def score(
        self,
        run_id: uuid.UUID,
        name: str,
        value: bool | float | str,
        **fields: Any,
    ) -> ScoreRecord:
        """Score a run: `client.score(run_id, "helpfulness", 0.8, comment="...")`.
        Other fields: id, source, comment, author, metadata, idempotency_key."""
        return await self._send(calls.save_score(calls.run_score(run_id, name, value, **fields)))

    async def save_score(self, score: ScoreCreate) -> ScoreRecord:
        return await self._send(calls.save_score(score))

    async def list_scores(
        self, filters: ScoreFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ScoreRecord]:
        return await self._send(calls.list_scores(filters, limit, cursor))

    async def delete_score(self, score_id: uuid.UUID) -> None:
        await self._send(calls.delete_score(score_id))

    async def save_score_config(self, config: ScoreConfigCreate) -> ScoreConfigRecord:
        return await self._send(calls.save_score_config(config))

    async def health(self) -> dict[str, Any]:
        return await self._send(calls.health())
