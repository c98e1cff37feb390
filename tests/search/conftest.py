"""A small world to search: two actors' runs, steps, LLM calls, threads, messages and
memory, each holding words of one of the language classes search promises to find."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    EmbeddingCreate,
    LLMCallCreate,
    MessageCreate,
    PgVectorStore,
    PostgresStore,
    RunCreate,
    SearchStore,
    StepCreate,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.settings import get_settings

DIM = get_settings().embedding_dim


def unit(i: int) -> list[float]:
    """A unit vector along axis i: distinct, exactly comparable embeddings."""
    v = [0.0] * DIM
    v[i % DIM] = 1.0
    return v


@dataclass
class World:
    search: SearchStore
    run: uuid.UUID
    step: uuid.UUID
    call: uuid.UUID
    thread: uuid.UUID
    message: uuid.UUID
    memory: uuid.UUID
    bob_run: uuid.UUID


@pytest.fixture
async def world(
    store: PostgresStore,
    vector_store: PgVectorStore,
    session_factory: async_sessionmaker[AsyncSession],
) -> World:
    threads = ThreadStore(session_factory)
    thread = await threads.create_thread(
        ThreadCreate(agent_type="support", title="Refund for a broken kettle"), actor="alice"
    )
    message = (
        await threads.add_messages(
            thread.id,
            [
                MessageCreate(
                    role="user", content="Mon colis n'est jamais arrivé, je veux être remboursée"
                )
            ],
            actor="alice",
        )
    )[0]
    run = await store.save_run(
        RunCreate(
            actor="alice",
            name="support triage",
            thread_id=thread.id,
            tags=["prod"],
            request_payload={"messages": [{"role": "user", "content": "Where is order-4411?"}]},
            result={"answer": "Order c-1029 shipped yesterday"},
            metadata={"team": "care"},
        )
    )
    step = (
        await store.save_steps(
            [
                StepCreate(
                    run_id=run.id,
                    step_index=0,
                    name="get_weather",
                    input={"city": "東京"},
                    output={"forecast": "今日の天気予報は晴れです"},
                    metadata={"tool": True},
                )
            ]
        )
    )[0]
    call = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            model="gpt-test",
            request={"prompt": "Die Lieferung wurde storniert"},
            response={"text": "The customers were refunded quickly"},
        )
    )
    memory = (
        await vector_store.add_embeddings(
            [
                EmbeddingCreate(
                    actor="alice",
                    namespace="facts",
                    run_id=run.id,
                    content="The user prefers invoices by email; account ACME-77",
                    embedding=unit(0),
                )
            ]
        )
    )[0]
    bob_run = await store.save_run(
        RunCreate(actor="bob", name="bob looks for order-4411 too", result={"x": "refund"})
    )
    await vector_store.add_embeddings(
        [EmbeddingCreate(actor="bob", content="refund ACME-77", embedding=unit(1))]
    )
    return World(
        SearchStore(session_factory),
        run.id,
        step.id,
        call.id,
        thread.id,
        message.id,
        memory.id,
        bob_run.id,
    )
