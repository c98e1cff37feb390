"""The app's stores, built once by the lifespan: the one way routes and pages reach them.

A route declares `CurrentCaller` (apps/core_api/auth.py): the actor and these stores, in
one dependency. Writes go through the stores themselves; reads that may lag behind (on
READ_DATABASE_URL when set) go through `read_runs` and `read_vectors`, whose types carry
only reads, so a write cannot be sent to the replica by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from chad_memory.database import Database
from chad_memory.replicas import ReplicaState, RunReads, VectorReads
from chad_memory.stores import (
    DatasetStore,
    ExperimentStore,
    PgVectorStore,
    PostgresStore,
    PriceStore,
    ScoreStore,
    ThreadStore,
    TraceStore,
)
from chad_memory.stores.keys import ApiKeyStore
from chad_memory.stores.search import SearchStore
from chad_memory.stores.span_logs import SpanLogStore


@dataclass(frozen=True, slots=True)
class Stores:
    runs: PostgresStore
    vectors: PgVectorStore
    threads: ThreadStore
    prices: PriceStore
    traces: TraceStore
    logs: SpanLogStore
    keys: ApiKeyStore
    search: SearchStore
    scores: ScoreStore
    datasets: DatasetStore
    experiments: ExperimentStore
    read_runs: RunReads
    read_vectors: VectorReads

    @classmethod
    def over(
        cls, db: Database, replica: Database | None = None, state: ReplicaState | None = None
    ) -> Stores:
        """Every store on `db`; the reads on `replica` first when there is one."""
        runs, vectors = PostgresStore(db), PgVectorStore(db)
        replica_runs = PostgresStore(replica) if replica is not None else None
        replica_vectors = PgVectorStore(replica) if replica is not None else None
        return cls(
            runs=runs,
            vectors=vectors,
            threads=ThreadStore(db),
            prices=PriceStore(db),
            traces=TraceStore(db),
            logs=SpanLogStore(db),
            keys=ApiKeyStore(db),
            search=SearchStore(db),
            scores=ScoreStore(db),
            datasets=DatasetStore(db),
            experiments=ExperimentStore(db),
            read_runs=RunReads(runs, replica_runs, state),
            read_vectors=VectorReads(vectors, replica_vectors, state),
        )


def stores_of(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores
