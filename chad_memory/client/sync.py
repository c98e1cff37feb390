"""`ChadMemoryClient`: the service over HTTP, with the stores' method names, blocking."""

from __future__ import annotations

import time
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


class ChadMemoryClient:
    """A chad-memory service, as the library's stores would be used.

    Methods mirror PostgresStore, PgVectorStore and ThreadStore, take and return the
    same models, and raise the same exceptions (`chad_memory.errors`) for 4xx answers.
    Differences, all because the service decides them: the actor is the API key's (an
    `actor` in a model or filter is not sent); ids are assigned by the service (a model
    carrying an `id` is refused); `list_runs` returns summaries (no payloads).
    `save_steps` sends one request per run (per 1,000 steps): each request is all or
    nothing, the whole call is not. 502/503/504 and failed connections are retried.
    """

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff, cap=max_wait)
        self._http = httpx.Client(
            **client_options(base_url, api_key, timeout, headers), transport=transport
        )

    def __enter__(self) -> ChadMemoryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.send(build_request(self._http, call))
            except NOT_SENT as exc:
                if attempt >= self.retry_policy.retries:
                    raise unreachable(call, exc) from exc
                time.sleep(self.retry_policy.wait(attempt))
                attempt += 1
                continue
            wait = should_retry(response, attempt, self.retry_policy)
            if wait is None:
                result: T = finish(call, response)
                return result
            time.sleep(wait)
            attempt += 1

    # Runs -----------------------------------------------------------------------------

    def save_run(self, run: RunCreate) -> RunRecord:
        return self._send(calls.save_run(run))

    def get_run(self, run_id: uuid.UUID) -> RunRecord:
        return self._send(calls.get_run(run_id))

    def list_runs(
        self,
        filters: RunFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        exact_total: bool = False,
    ) -> Page[RunSummary]:
        return self._send(calls.list_runs(filters, limit, offset, cursor, exact_total))

    def count_runs(self, filters: RunFilter | None = None) -> int:
        return self._send(calls.count_runs(filters))

    def update_run(self, run_id: uuid.UUID, changes: RunUpdate) -> RunRecord:
        return self._send(calls.update_run(run_id, changes))

    def delete_run(self, run_id: uuid.UUID) -> None:
        self._send(calls.delete_run(run_id))

    def get_run_stats(self, run_id: uuid.UUID) -> RunStats:
        return self._send(calls.get_run_stats(run_id))

    # Steps, LLM calls, artifacts ------------------------------------------------------

    def save_step(self, step: StepCreate) -> StepRecord:
        return self.save_steps([step])[0]

    def save_steps(self, steps: Sequence[StepCreate]) -> list[StepRecord]:
        records: list[Any] = [None] * len(steps)
        for positions, call in calls.save_steps(steps):
            saved: list[StepRecord] = self._send(call)
            for position, record in zip(positions, saved, strict=True):
                records[position] = record
        return records

    def get_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        """Every one of the run's records, page after page (1,000 a request)."""
        records: list[StepRecord] = []
        cursor = None
        while True:
            page, cursor = self._send(calls.get_steps(run_id, cursor))
            records += page
            if cursor is None:
                return records

    def save_llm_call(self, call: LLMCallCreate) -> LLMCallRecord:
        return self._send(calls.save_llm_call(call))

    def get_llm_calls(self, run_id: uuid.UUID) -> list[LLMCallRecord]:
        """Every one of the run's records, page after page (1,000 a request)."""
        records: list[LLMCallRecord] = []
        cursor = None
        while True:
            page, cursor = self._send(calls.get_llm_calls(run_id, cursor))
            records += page
            if cursor is None:
                return records

    def save_artifact(self, artifact: ArtifactCreate) -> ArtifactRecord:
        return self._send(calls.save_artifact(artifact))

    def get_artifacts(self, run_id: uuid.UUID) -> list[ArtifactRecord]:
        """Every one of the run's records, page after page (1,000 a request)."""
        records: list[ArtifactRecord] = []
        cursor = None
        while True:
            page, cursor = self._send(calls.get_artifacts(run_id, cursor))
            records += page
            if cursor is None:
                return records

    # Memory ---------------------------------------------------------------------------

    def add_embedding(self, item: EmbeddingCreate) -> EmbeddingRecord:
        return self.add_embeddings([item])[0]

    def add_embeddings(self, items: Sequence[EmbeddingCreate]) -> list[EmbeddingRecord]:
        return [r for call in calls.add_embeddings(items) for r in self._send(call)]

    def search(
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
        return self._send(
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

    def run_memory(self, run_id: uuid.UUID, *, limit: int = 50) -> RunMemory:
        """What the run wrote to memory and what its searches read."""
        return self._send(calls.run_memory(run_id, limit))

    def memory_detail(self, embedding_id: uuid.UUID, *, limit: int = 50) -> MemoryDetail:
        """One memory, the run that wrote it and the runs that read it."""
        return self._send(calls.memory_detail(embedding_id, limit))

    def delete_by_source(self, source_id: str) -> int:
        return self._send(calls.delete_by_source(source_id))

    # Threads and messages -------------------------------------------------------------

    def create_thread(self, thread: ThreadCreate) -> ThreadRecord:
        return self._send(calls.create_thread(thread))

    def get_thread(self, thread_id: uuid.UUID) -> ThreadRecord:
        return self._send(calls.get_thread(thread_id))

    def list_threads(self, *, limit: int = 50, cursor: str | None = None) -> Page[ThreadRecord]:
        return self._send(calls.list_threads(limit, cursor))

    def count_threads(self) -> int:
        return self._send(calls.count_threads())

    def update_thread(self, thread_id: uuid.UUID, changes: ThreadUpdate) -> ThreadRecord:
        return self._send(calls.update_thread(thread_id, changes))

    def delete_thread(self, thread_id: uuid.UUID) -> None:
        self._send(calls.delete_thread(thread_id))

    def add_message(self, thread_id: uuid.UUID, message: MessageCreate) -> MessageRecord:
        return self.add_messages(thread_id, [message])[0]

    def add_messages(
        self, thread_id: uuid.UUID, messages: Sequence[MessageCreate]
    ) -> list[MessageRecord]:
        return [r for call in calls.add_messages(thread_id, messages) for r in self._send(call)]

    def list_messages(
        self, thread_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[MessageRecord]:
        return self._send(calls.list_messages(thread_id, limit, cursor))

    def count_messages(self, thread_id: uuid.UUID) -> int:
        return self._send(calls.count_messages(thread_id))

    def delete_message(self, message_id: uuid.UUID) -> None:
        self._send(calls.delete_message(message_id))

    def list_thread_runs(
        self, thread_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[RunRecord]:
        return self._send(calls.list_thread_runs(thread_id, limit, cursor))

    # Scores ---------------------------------------------------------------------------

    def score(
        self,
        run_id: uuid.UUID,
        name: str,
        value: bool | float | str,
        **fields: Any,
    ) -> ScoreRecord:
        """Score a run: `client.score(run_id, "helpfulness", 0.8, comment="...")`.
        Other fields: id, source, comment, author, metadata, idempotency_key."""
        return self._send(calls.save_score(calls.run_score(run_id, name, value, **fields)))

    def save_score(self, score: ScoreCreate) -> ScoreRecord:
        return self._send(calls.save_score(score))

    def list_scores(
        self, filters: ScoreFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ScoreRecord]:
        return self._send(calls.list_scores(filters, limit, cursor))

    def delete_score(self, score_id: uuid.UUID) -> None:
        self._send(calls.delete_score(score_id))

    def save_score_config(self, config: ScoreConfigCreate) -> ScoreConfigRecord:
        return self._send(calls.save_score_config(config))

    def health(self) -> dict[str, Any]:
        return self._send(calls.health())
