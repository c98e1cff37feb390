"""A small, complete data set for the operations tests: every kind of row, two actors."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import (
    ArtifactCreate,
    EmbeddingCreate,
    LLMCallCreate,
    PgVectorStore,
    PostgresStore,
    RunCreate,
    StepCreate,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.schemas import MessageCreate
from chad_memory.settings import get_settings

DIM = get_settings().embedding_dim


@dataclass
class Seeded:
    runs: dict[str, list[uuid.UUID]] = field(default_factory=dict)  # actor -> run ids
    old: set[uuid.UUID] = field(default_factory=set)  # runs backdated past the cutoff


async def seed(
    engine: AsyncEngine,
    store: PostgresStore,
    vectors: PgVectorStore,
    threads: ThreadStore,
    *,
    runs_per_actor: int = 4,
    old_per_actor: int = 2,
    age: timedelta = timedelta(days=100),
) -> Seeded:
    """Per actor: a thread with messages, runs (the first `old_per_actor` backdated by
    `age`) each with nested steps, an LLM call, an artifact and an embedding."""
    out = Seeded()
    rng = np.random.default_rng(3)
    for actor in ("alice", "bob"):
        thread = await threads.create_thread(ThreadCreate(agent_type="chat"), actor=actor)
        await threads.add_messages(
            thread.id,
            [
                MessageCreate(role="user", content=f"hi from {actor}"),
                MessageCreate(role="assistant", content="hello", metadata={"n": 1}),
            ],
            actor=actor,
        )
        ids = []
        for i in range(runs_per_actor):
            run = await store.save_run(
                RunCreate(
                    actor=actor,
                    name=f"job-{i}",
                    status="failed" if i % 2 else "succeeded",
                    thread_id=thread.id,
                    tags=["t"],
                    metadata={"i": i},
                    request_payload={"q": [1, 2.5, None, "x"]},
                )
            )
            root = await store.save_step(StepCreate(run_id=run.id, step_index=0, name="root"))
            await store.save_steps(
                [
                    StepCreate(run_id=run.id, step_index=1, parent_step_id=root.id, name="a"),
                    StepCreate(run_id=run.id, step_index=2, parent_step_id=root.id, name="b"),
                ]
            )
            await store.save_llm_call(
                LLMCallCreate(
                    run_id=run.id,
                    step_id=root.id,
                    provider="openai",
                    model="gpt-4o",
                    prompt_tokens=10,
                    completion_tokens=5,
                    cost_usd=Decimal("0.00012345"),
                    latency_ms=12.5,
                )
            )
            await store.save_artifact(
                ArtifactCreate(run_id=run.id, step_id=root.id, name="out.txt", size_bytes=3)
            )
            vector = rng.standard_normal(DIM).astype(np.float32)
            await vectors.add_embedding(
                EmbeddingCreate(
                    actor=actor,
                    run_id=run.id,
                    source_id=f"doc-{i}",
                    content=f"c-{i}",
                    embedding=(vector / np.linalg.norm(vector)).tolist(),
                )
            )
            ids.append(run.id)
        old = ids[:old_per_actor]
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE runs SET created_at = :at WHERE id = ANY(:ids)"),
                {"at": datetime.now(UTC) - age, "ids": old},
            )
        out.runs[actor] = ids
        out.old.update(old)
    return out
