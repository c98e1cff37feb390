"""Reads on a streaming replica, with the primary behind it, as types of their own.

`READ_DATABASE_URL` names a hot standby. Dashboard reads (run lists, a run's children,
stats, analytics, memory search) go there, so they stop competing with the agents'
writes; writes, and any read whose caller needs its own write, stay on the primary.

`RunReads` and `VectorReads` are the reads that may lag: each names the store methods
it routes, so a write is not among them and `mypy` refuses `reads.delete_run(...)`. A
read runs on the replica unless the replica is known to be down. When it fails there
because the replica is unreachable, the replica is marked down for `cooldown_s` and the
same read runs on the primary, so the caller sees an answer, not a 503. A replica also
lags a little behind: a row that is not there yet (NotFoundError) is looked up on the
primary before anyone is told it does not exist. Without a replica the primary answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from chad_memory.errors import DatabaseUnavailableError, NotFoundError, PoolExhaustedError
from chad_memory.stores import PgVectorStore, PostgresStore

logger = logging.getLogger(__name__)

S = TypeVar("S")
# Covariant: a PostgresStore's reads are its mixins' reads (RunMethods, StepMethods, ...).
Store_co = TypeVar("Store_co", covariant=True)
P = ParamSpec("P")
T = TypeVar("T")


class ReplicaState:
    """Whether reads may go to the replica now; shared by every store that uses it."""

    def __init__(self, cooldown_s: float = 5.0) -> None:
        self.cooldown_s = cooldown_s
        self._down_until = 0.0
        # Reads the primary answered in the replica's place (outage or lag).
        self.fallbacks = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def mark_down(self, reason: str) -> None:
        if self.available:
            logger.warning(
                "read replica unavailable (%s); reading from the primary for %.0fs",
                reason,
                self.cooldown_s,
            )
        self._down_until = time.monotonic() + self.cooldown_s


class Reads(Generic[Store_co]):
    """A store's reads: on `replica` first when there is one (see module doc)."""

    def __init__(
        self,
        primary: Store_co,
        replica: Store_co | None = None,
        state: ReplicaState | None = None,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.state = state or ReplicaState()


def replica_first(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[Reads[S], P], Coroutine[Any, Any, T]]:
    """`method` as a read of `Reads[S]`, with the store method's own signature."""

    async def routed(self: Reads[S], /, *args: P.args, **kwargs: P.kwargs) -> T:
        replica, state = self.replica, self.state
        if replica is None:
            return await method(self.primary, *args, **kwargs)
        if state.available:
            try:
                return await method(replica, *args, **kwargs)
            except (DatabaseUnavailableError, PoolExhaustedError) as exc:
                state.mark_down(type(exc).__name__)
            except NotFoundError:
                pass  # not replicated yet, perhaps: the primary decides
        state.fallbacks += 1
        return await method(self.primary, *args, **kwargs)

    routed.__name__ = getattr(method, "__name__", routed.__name__)
    routed.__doc__ = method.__doc__
    return routed


class RunReads(Reads[PostgresStore]):
    """The run store's reads that a replica may answer."""

    get_run = replica_first(PostgresStore.get_run)
    get_run_detail = replica_first(PostgresStore.get_run_detail)
    get_run_page = replica_first(PostgresStore.get_run_page)
    list_runs = replica_first(PostgresStore.list_runs)
    list_run_summaries = replica_first(PostgresStore.list_run_summaries)
    count_runs = replica_first(PostgresStore.count_runs)
    get_steps = replica_first(PostgresStore.get_steps)
    list_steps = replica_first(PostgresStore.list_steps)
    get_artifacts = replica_first(PostgresStore.get_artifacts)
    list_artifacts = replica_first(PostgresStore.list_artifacts)
    get_llm_calls = replica_first(PostgresStore.get_llm_calls)
    list_llm_calls = replica_first(PostgresStore.list_llm_calls)
    get_run_stats = replica_first(PostgresStore.get_run_stats)
    get_run_totals = replica_first(PostgresStore.get_run_totals)
    usage = replica_first(PostgresStore.usage)
    usage_reports = replica_first(PostgresStore.usage_reports)


class VectorReads(Reads[PgVectorStore]):
    """The vector store's reads that a replica may answer."""

    search = replica_first(PgVectorStore.search)
    list_embeddings = replica_first(PgVectorStore.list_embeddings)
    count_by_namespace = replica_first(PgVectorStore.count_by_namespace)
    more_like = replica_first(PgVectorStore.more_like)
    run_memory = replica_first(PgVectorStore.run_memory)
    memory_detail = replica_first(PgVectorStore.memory_detail)
