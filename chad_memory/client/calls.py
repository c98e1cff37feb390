"""What each client method sends and how its answer is read, shared by both clients.

A method of `ChadMemoryClient` or `AsyncChadMemoryClient` is a `Call` built here (verb,
path, query, body, and a function that turns the answer into the library's record), sent
by the client's own transport. So the two clients cannot drift apart: the only thing
they do differently is wait.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from chad_memory.errors import (
    AuthenticationError,
    ChadMemoryError,
    ConflictError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from chad_memory.request_caps import MAX_ITEMS_PER_REQUEST
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
R = TypeVar("R")
# A child list's page: its records and the cursor of the next page (None: the last one).
ChildPage = tuple[list[R], str | None]


# Status codes a client retries: the service (or a proxy in front of it) says "not now",
# and nothing was written. 503 carries Retry-After; 502/504 come from proxies or timeouts.
RETRY_STATUSES = frozenset({502, 503, 504})

_ERROR_BY_STATUS: dict[int, type[ChadMemoryError]] = {
    400: InvalidInputError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidInputError,
    415: InvalidInputError,
    422: InvalidInputError,
    503: DatabaseUnavailableError,
    504: DatabaseTimeoutError,
}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request and how to read its successful answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error_for(response: httpx.Response) -> ChadMemoryError:
    """The library exception for an error answer, carrying the service's own words."""
    try:
        detail: Any = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if not isinstance(detail, str):
        detail = str(detail)
    cls = _ERROR_BY_STATUS.get(response.status_code, ChadMemoryError)
    error = cls(
        f"{response.status_code} {response.request.method} {response.request.url.path}: "
        f"{detail[:2000]}"
    )
    error.status_code = response.status_code  # type: ignore[attr-defined]
    return error


def retry_after(response: httpx.Response, fallback: float, cap: float) -> float:
    """Seconds to wait before the next attempt: the server's Retry-After when it sent one."""
    value = response.headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), cap) if value is not None else fallback
    except ValueError:
        return fallback


def _model(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda r: cls.model_validate(r.json())


def _items(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]
    return lambda r: adapter.validate_python(r.json())


def _child_page(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    """A child list's page: the records, and the X-Next-Cursor header (None: last page)."""
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]
    return lambda r: (adapter.validate_python(r.json()), r.headers.get("X-Next-Cursor"))


def _page(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    page = Page[cls]  # type: ignore[valid-type]
    return lambda r: page.model_validate(r.json())


def _none(response: httpx.Response) -> None:
    return None


def _refuse_ids(**ids: uuid.UUID | None) -> None:
    """The service chooses ids; a caller's id would be silently replaced, so refuse it."""
    given = [name for name, value in ids.items() if value is not None]
    if given:
        raise InvalidInputError(
            f"{', '.join(given)} cannot be chosen over HTTP: the service assigns ids "
            "(use the id of the returned record)"
        )


def _body(model: BaseModel, *, exclude: set[str]) -> Any:
    return model.model_dump(mode="json", exclude=exclude)


# Runs ---------------------------------------------------------------------------------


def save_run(run: RunCreate) -> Call[RunRecord]:
    """POST /runs. The actor is the API key's (run.actor is not sent); an idempotency key
    becomes the Idempotency-Key header, so a retried create returns the first run."""
    _refuse_ids(id=run.id)
    headers = {"Idempotency-Key": run.idempotency_key} if run.idempotency_key else {}
    body = _body(run, exclude={"id", "actor", "idempotency_key"})
    return Call("POST", "/runs", _model(RunRecord), json=body, headers=headers)


def get_run(run_id: uuid.UUID) -> Call[RunRecord]:
    return Call("GET", f"/runs/{run_id}", _model(RunRecord))


def _run_query(filters: RunFilter | None) -> dict[str, Any]:
    """RunFilter as GET /runs parameters; `actor` is the API key's, never a parameter."""
    if filters is None:
        return {}
    data: dict[str, Any] = filters.model_dump(mode="json", exclude={"actor"}, exclude_none=True)
    return data


def list_runs(
    filters: RunFilter | None, limit: int, offset: int, cursor: str | None, exact_total: bool
) -> Call[Page[RunSummary]]:
    params: dict[str, Any] = {**_run_query(filters), "limit": limit}
    if offset:
        params["offset"] = offset
    if cursor is not None:
        params["cursor"] = cursor
    if exact_total:
        params["exact_total"] = "true"
    return Call("GET", "/runs", _page(RunSummary), params=params)


def count_runs(filters: RunFilter | None) -> Call[int]:
    params = {**_run_query(filters), "limit": 1, "exact_total": "true"}
    return Call("GET", "/runs", lambda r: int(r.json()["total"]), params=params)


def update_run(run_id: uuid.UUID, changes: RunUpdate) -> Call[RunRecord]:
    body = changes.model_dump(mode="json", exclude_unset=True)
    return Call("PATCH", f"/runs/{run_id}", _model(RunRecord), json=body)


def delete_run(run_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/runs/{run_id}", _none)


def get_run_stats(run_id: uuid.UUID) -> Call[RunStats]:
    return Call("GET", f"/runs/{run_id}/stats", _model(RunStats))


# Steps, LLM calls, artifacts ----------------------------------------------------------


def save_steps(steps: Sequence[StepCreate]) -> list[tuple[list[int], Call[list[StepRecord]]]]:
    """POST /runs/{id}/steps per run, in chunks the service accepts; each call comes with
    the input positions it answers for, so the caller can put records back in order."""
    by_run: dict[uuid.UUID, list[int]] = {}
    for position, step in enumerate(steps):
        _refuse_ids(id=step.id)
        by_run.setdefault(step.run_id, []).append(position)
    calls = []
    for run_id, positions in by_run.items():
        for start in range(0, len(positions), MAX_ITEMS_PER_REQUEST):
            chunk = positions[start : start + MAX_ITEMS_PER_REQUEST]
            body = [_body(steps[i], exclude={"id", "run_id"}) for i in chunk]
            calls.append(
                (chunk, Call("POST", f"/runs/{run_id}/steps", _items(StepRecord), json=body))
            )
    return calls


def get_steps(run_id: uuid.UUID, cursor: str | None) -> Call[ChildPage[StepRecord]]:
    """One page of a run's steps (up to 1,000); the client follows the cursor."""
    params = (
        {"limit": MAX_ITEMS_PER_REQUEST}
        if cursor is None
        else {"limit": MAX_ITEMS_PER_REQUEST, "cursor": cursor}
    )
    return Call("GET", f"/runs/{run_id}/steps", _child_page(StepRecord), params=params)


def save_llm_call(call: LLMCallCreate) -> Call[LLMCallRecord]:
    _refuse_ids(id=call.id)
    body = _body(call, exclude={"id", "run_id"})
    return Call("POST", f"/runs/{call.run_id}/llm-calls", _model(LLMCallRecord), json=body)


def get_llm_calls(run_id: uuid.UUID, cursor: str | None) -> Call[ChildPage[LLMCallRecord]]:
    """One page of a run's llm-calls (up to 1,000); the client follows the cursor."""
    params = (
        {"limit": MAX_ITEMS_PER_REQUEST}
        if cursor is None
        else {"limit": MAX_ITEMS_PER_REQUEST, "cursor": cursor}
    )
    return Call("GET", f"/runs/{run_id}/llm-calls", _child_page(LLMCallRecord), params=params)


def save_artifact(artifact: ArtifactCreate) -> Call[ArtifactRecord]:
    _refuse_ids(id=artifact.id)
    body = _body(artifact, exclude={"id", "run_id"})
    return Call("POST", f"/runs/{artifact.run_id}/artifacts", _model(ArtifactRecord), json=body)


def get_artifacts(run_id: uuid.UUID, cursor: str | None) -> Call[ChildPage[ArtifactRecord]]:
    """One page of a run's artifacts (up to 1,000); the client follows the cursor."""
    params = (
        {"limit": MAX_ITEMS_PER_REQUEST}
        if cursor is None
        else {"limit": MAX_ITEMS_PER_REQUEST, "cursor": cursor}
    )
    return Call("GET", f"/runs/{run_id}/artifacts", _child_page(ArtifactRecord), params=params)


# Memory -------------------------------------------------------------------------------


def add_embeddings(items: Sequence[EmbeddingCreate]) -> list[Call[list[EmbeddingRecord]]]:
    calls = []
    for start in range(0, len(items), MAX_ITEMS_PER_REQUEST):
        chunk = items[start : start + MAX_ITEMS_PER_REQUEST]
        for item in chunk:
            _refuse_ids(id=item.id)
        body = {"items": [_body(i, exclude={"id", "actor"}) for i in chunk]}
        read = lambda r: TypeAdapter(list[EmbeddingRecord]).validate_python(r.json()["items"])  # noqa: E731
        calls.append(Call("POST", "/memory", read, json=body))
    return calls


def search(
    embedding: Sequence[float] | None,
    k: int,
    namespace: str | None,
    source_id: str | None,
    metadata: dict[str, Any] | None,
    min_score: float | None,
    *,
    query: str | None = None,
    run_id: uuid.UUID | None = None,
    step_id: uuid.UUID | None = None,
    as_of: datetime | None = None,
) -> Call[list[SearchHit]]:
    """POST /memory/search by `embedding` or `query` text; `run_id` records the hits as
    that run's reads."""
    body: dict[str, Any] = {"k": k}
    optional = {
        "embedding": None if embedding is None else list(embedding),
        "query": query,
        "namespace": namespace,
        "source_id": source_id,
        "metadata": metadata,
        "min_score": min_score,
        "run_id": None if run_id is None else str(run_id),
        "step_id": None if step_id is None else str(step_id),
        "as_of": None if as_of is None else as_of.isoformat(),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    read = lambda r: TypeAdapter(list[SearchHit]).validate_python(r.json()["items"])  # noqa: E731
    return Call("POST", "/memory/search", read, json=body)


def run_memory(run_id: uuid.UUID, limit: int) -> Call[RunMemory]:
    read = lambda r: RunMemory.model_validate(r.json())  # noqa: E731
    return Call("GET", f"/runs/{run_id}/memory", read, params={"limit": limit})


def memory_detail(embedding_id: uuid.UUID, limit: int) -> Call[MemoryDetail]:
    read = lambda r: MemoryDetail.model_validate(r.json())  # noqa: E731
    return Call("GET", f"/memory/{embedding_id}", read, params={"limit": limit})


def delete_by_source(source_id: str) -> Call[int]:
    read = lambda r: int(r.json()["deleted"])  # noqa: E731
    return Call("DELETE", "/memory", read, params={"source_id": source_id})


# Threads and messages -----------------------------------------------------------------


def create_thread(thread: ThreadCreate) -> Call[ThreadRecord]:
    return Call("POST", "/threads", _model(ThreadRecord), json=thread.model_dump(mode="json"))


def get_thread(thread_id: uuid.UUID) -> Call[ThreadRecord]:
    return Call("GET", f"/threads/{thread_id}", _model(ThreadRecord))


def _paged(limit: int, cursor: str | None) -> dict[str, Any]:
    return {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}


def list_threads(limit: int, cursor: str | None) -> Call[Page[ThreadRecord]]:
    return Call("GET", "/threads", _page(ThreadRecord), params=_paged(limit, cursor))


def count_threads() -> Call[int]:
    return Call("GET", "/threads", lambda r: int(r.json()["total"]), params={"limit": 1})


def update_thread(thread_id: uuid.UUID, changes: ThreadUpdate) -> Call[ThreadRecord]:
    body = changes.model_dump(mode="json", exclude_unset=True)
    return Call("PATCH", f"/threads/{thread_id}", _model(ThreadRecord), json=body)


def delete_thread(thread_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/threads/{thread_id}", _none)


def add_messages(
    thread_id: uuid.UUID, messages: Sequence[MessageCreate]
) -> list[Call[list[MessageRecord]]]:
    calls = []
    for start in range(0, len(messages), MAX_ITEMS_PER_REQUEST):
        body = [m.model_dump(mode="json") for m in messages[start : start + MAX_ITEMS_PER_REQUEST]]
        path = f"/threads/{thread_id}/messages"
        calls.append(Call("POST", path, _items(MessageRecord), json=body))
    return calls


def list_messages(
    thread_id: uuid.UUID, limit: int, cursor: str | None
) -> Call[Page[MessageRecord]]:
    path = f"/threads/{thread_id}/messages"
    return Call("GET", path, _page(MessageRecord), params=_paged(limit, cursor))


def count_messages(thread_id: uuid.UUID) -> Call[int]:
    path = f"/threads/{thread_id}/messages"
    return Call("GET", path, lambda r: int(r.json()["total"]), params={"limit": 1})


def delete_message(message_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/messages/{message_id}", _none)


def list_thread_runs(thread_id: uuid.UUID, limit: int, cursor: str | None) -> Call[Page[RunRecord]]:
    path = f"/threads/{thread_id}/runs"
    return Call("GET", path, _page(RunRecord), params=_paged(limit, cursor))


# Scores -------------------------------------------------------------------------------


def run_score(
    run_id: uuid.UUID, name: str, value: bool | float | str, **fields: Any
) -> ScoreCreate:
    """The score `score(run_id, name, value, ...)` sends: on the run, keyed as asked."""
    return ScoreCreate.model_validate(
        {"target_type": "run", "target_id": run_id, "name": name, "value": value, **fields}
    )


def save_score(score: ScoreCreate) -> Call[ScoreRecord]:
    """POST /scores. The score's own id may be chosen (sending it again updates it); an
    idempotency key becomes the Idempotency-Key header."""
    headers = {"Idempotency-Key": score.idempotency_key} if score.idempotency_key else {}
    body = _body(score, exclude={"idempotency_key"})
    return Call("POST", "/scores", _model(ScoreRecord), json=body, headers=headers)


def list_scores(
    filters: ScoreFilter | None, limit: int, cursor: str | None
) -> Call[Page[ScoreRecord]]:
    params = {} if filters is None else filters.model_dump(mode="json", exclude_none=True)
    return Call("GET", "/scores", _page(ScoreRecord), params={**params, **_paged(limit, cursor)})


def delete_score(score_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/scores/{score_id}", _none)


def save_score_config(config: ScoreConfigCreate) -> Call[ScoreConfigRecord]:
    body = config.model_dump(mode="json")
    return Call("POST", "/score-configs", _model(ScoreConfigRecord), json=body)


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", lambda r: dict(r.json()))
