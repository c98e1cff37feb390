"""Hypothesis state machines: after every operation the database equals a plain model.

The model is a few dicts that encode the store's contract (idempotency keys return the
first run, trace ids are unique, status only moves forward, step indexes are unique per
run, another actor's id is a conflict, deletes cascade). Hypothesis drives random
sequences of store calls and shrinks any divergence to a minimal reproduction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from chad_memory import (
    ConflictError,
    EmbeddingCreate,
    LLMCallCreate,
    NotFoundError,
    PgVectorStore,
    PostgresStore,
    RunCreate,
    RunUpdate,
    StepCreate,
)
from chad_memory.database import create_engine, get_session_factory
from chad_memory.settings import get_settings
from chad_memory.stores.runs import TRANSITIONS
from chad_memory.stores.transactions import RetryPolicy

T = TypeVar("T")

ACTORS = st.sampled_from(["alice", "bob"])
NAMES = st.text(alphabet="abcxyzé€", min_size=1, max_size=6)
TRACES = st.sampled_from([None, "t1", "t2", "t3"])
KEYS = st.sampled_from([None, "k1", "k2"])
STATUSES = st.sampled_from(sorted(TRANSITIONS))


@dataclass
class ModelRun:
    actor: str
    name: str
    status: str
    trace_id: str | None
    idempotency_key: str | None
    steps: dict[int, str] = field(default_factory=dict)
    tokens: list[int] = field(default_factory=list)


def _machine(database_url: str) -> tuple[type[RuleBasedStateMachine], Callable[[], None]]:
    loop = asyncio.new_event_loop()
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    store = PostgresStore(get_session_factory(engine), retry_policy=RetryPolicy(attempts=1))

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coro)

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.runs: dict[uuid.UUID, ModelRun] = {}
            run(self._truncate())

        @staticmethod
        async def _truncate() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE runs CASCADE"))

        def _pick(self, data: st.DataObject) -> uuid.UUID:
            return data.draw(st.sampled_from(list(self.runs)))  # insertion order: replayable

        @rule(actor=ACTORS, name=NAMES, trace_id=TRACES, key=KEYS)
        def create_run(self, actor: str, name: str, trace_id: str | None, key: str | None) -> None:
            first = next(
                (
                    (rid, r)
                    for rid, r in self.runs.items()
                    if key is not None and r.actor == actor and r.idempotency_key == key
                ),
                None,
            )
            # trace_id is unique per actor (revision 006): another actor's is no conflict.
            taken = trace_id is not None and any(
                r.actor == actor and r.trace_id == trace_id for r in self.runs.values()
            )
            new = RunCreate(actor=actor, name=name, trace_id=trace_id, idempotency_key=key)
            if first is not None:
                got = run(store.save_run(new))
                assert got.id == first[0]
                assert got.name == first[1].name  # the first run, unchanged
            elif taken:
                try:
                    run(store.save_run(new))
                    raise AssertionError("duplicate trace_id accepted")
                except ConflictError:
                    pass
            else:
                got = run(store.save_run(new))
                self.runs[got.id] = ModelRun(actor, name, "pending", trace_id, key)

        @precondition(lambda self: self.runs)
        @rule(data=st.data(), actor=ACTORS, name=NAMES, status=STATUSES)
        def upsert_by_id(self, data: st.DataObject, actor: str, name: str, status: str) -> None:
            rid = self._pick(data)
            new = RunCreate(id=rid, actor=actor, name=name, status=status)
            if self.runs[rid].actor != actor:
                try:
                    run(store.save_run(new))
                    raise AssertionError("another actor overwrote a run")
                except ConflictError:
                    return
            run(store.save_run(new))
            model = self.runs[rid]
            # An upsert writes every writable column: an absent trace_id clears it.
            model.name, model.status, model.trace_id = name, status, None

        @precondition(lambda self: self.runs)
        @rule(data=st.data(), status=STATUSES)
        def update_status(self, data: st.DataObject, status: str) -> None:
            rid = self._pick(data)
            change = RunUpdate(status=status)
            if status not in TRANSITIONS[self.runs[rid].status]:
                try:
                    run(store.update_run(rid, change))
                    raise AssertionError("backward status move accepted")
                except ConflictError:
                    return
            assert run(store.update_run(rid, change)).status == status
            self.runs[rid].status = status

        @precondition(lambda self: self.runs)
        @rule(data=st.data(), index=st.integers(0, 3), name=NAMES)
        def add_step(self, data: st.DataObject, index: int, name: str) -> None:
            rid = self._pick(data)
            step = StepCreate(run_id=rid, step_index=index, name=name)
            if index in self.runs[rid].steps:
                try:
                    run(store.save_step(step))
                    raise AssertionError("duplicate step_index accepted")
                except ConflictError:
                    return
            run(store.save_step(step))
            self.runs[rid].steps[index] = name

        @rule(index=st.integers(0, 3))
        def add_step_to_unknown_run(self, index: int) -> None:
            try:
                run(store.save_step(StepCreate(run_id=uuid.uuid4(), step_index=index)))
                raise AssertionError("step for a missing run accepted")
            except NotFoundError:
                pass

        @precondition(lambda self: self.runs)
        @rule(data=st.data(), prompt=st.integers(0, 10**6), completion=st.integers(0, 10**6))
        def add_llm_call(self, data: st.DataObject, prompt: int, completion: int) -> None:
            rid = self._pick(data)
            call = LLMCallCreate(
                run_id=rid,
                provider="p",
                model="m",
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            assert run(store.save_llm_call(call)).total_tokens == prompt + completion
            self.runs[rid].tokens.append(prompt + completion)

        @precondition(lambda self: self.runs)
        @rule(data=st.data())
        def delete_run(self, data: st.DataObject) -> None:
            rid = self._pick(data)
            run(store.delete_run(rid))
            del self.runs[rid]
            try:
                run(store.delete_run(rid))
                raise AssertionError("deleted twice")
            except NotFoundError:
                pass

        @invariant()
        def database_equals_model(self) -> None:
            runs, steps, calls = run(self._snapshot())
            assert runs == {
                rid: (m.actor, m.name, m.status, m.trace_id, m.idempotency_key)
                for rid, m in self.runs.items()
            }
            assert steps == {
                (rid, i, n) for rid, m in self.runs.items() for i, n in m.steps.items()
            }
            assert calls == {rid: sorted(m.tokens) for rid, m in self.runs.items() if m.tokens}

        @staticmethod
        async def _snapshot() -> tuple[
            dict[uuid.UUID, tuple[Any, ...]],
            set[tuple[uuid.UUID, int, str]],
            dict[uuid.UUID, list[int]],
        ]:
            async with engine.connect() as conn:
                runs = await conn.execute(
                    text("SELECT id, actor, name, status, trace_id, idempotency_key FROM runs")
                )
                steps = await conn.execute(text("SELECT run_id, step_index, name FROM steps"))
                calls = await conn.execute(
                    text(
                        "SELECT run_id, array_agg(total_tokens ORDER BY total_tokens)"
                        " FROM llm_calls GROUP BY run_id"
                    )
                )
                return (
                    {r[0]: tuple(r[1:]) for r in runs},
                    {(r[0], r[1], r[2]) for r in steps},
                    {r[0]: list(r[1]) for r in calls},
                )

        def teardown(self) -> None:
            pass

    def close() -> None:
        run(engine.dispose())
        loop.close()

    return StoreMachine, close


def test_store_equals_model_after_every_step(database_url: str) -> None:
    machine, close = _machine(database_url)
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=25,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        close()


DIM = get_settings().embedding_dim
SOURCES = st.sampled_from(["s1", "s2", "s3"])


def _vectors_machine(
    database_url: str,
) -> tuple[type[RuleBasedStateMachine], Callable[[], None]]:
    """PgVectorStore: what each actor can find equals what the model says it stored."""
    loop = asyncio.new_event_loop()
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    store = PgVectorStore(get_session_factory(engine))

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coro)

    class VectorMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.rows: dict[uuid.UUID, tuple[str, str]] = {}  # id -> (actor, source)
            run(self._truncate())

        @staticmethod
        async def _truncate() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE embeddings CASCADE"))

        @rule(actor=ACTORS, source=SOURCES, seed=st.integers(1, 10**6), n=st.integers(1, 3))
        def add(self, actor: str, source: str, seed: int, n: int) -> None:
            items = [
                EmbeddingCreate(
                    actor=actor,
                    source_id=source,
                    embedding=[((seed * (i + 1) * (j + 3)) % 97 + 1) / 97 for j in range(DIM)],
                )
                for i in range(n)
            ]
            for record in run(store.add_embeddings(items)):
                self.rows[record.id] = (actor, source)

        @rule(actor=ACTORS, source=SOURCES)
        def delete_source(self, actor: str, source: str) -> None:
            gone = [i for i, (a, s) in self.rows.items() if (a, s) == (actor, source)]
            assert run(store.delete_by_source(source, actor=actor)) == len(gone)
            for i in gone:
                del self.rows[i]

        @invariant()
        def each_actor_finds_exactly_its_rows(self) -> None:
            query = [1.0] * DIM
            for actor in ("alice", "bob"):
                hits = run(store.search(query, k=1000, actor=actor))
                assert {h.id for h in hits} == {i for i, (a, _) in self.rows.items() if a == actor}

    def close() -> None:
        run(engine.dispose())
        loop.close()

    return VectorMachine, close


def test_vector_store_equals_model_after_every_step(database_url: str) -> None:
    machine, close = _vectors_machine(database_url)
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=15,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        close()
