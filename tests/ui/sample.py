"""Sample data for the dashboard's browser tests and `make screenshots`: what an agent
service would have recorded after a morning's work, for alice (and one run of bob's)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    ApiKeyStore,
    ArtifactCreate,
    EmbeddingCreate,
    LLMCallCreate,
    MessageCreate,
    PgVectorStore,
    PostgresStore,
    RunCreate,
    StepCreate,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.settings import get_settings


@dataclass
class Sample:
    alice_key: str
    bob_key: str
    support_run: uuid.UUID
    running_run: uuid.UUID
    failed_run: uuid.UUID
    bob_run: uuid.UUID
    thread: uuid.UUID
    embedding: uuid.UUID
    # The input of the support run's "search_orders" tool step, as the page should show it.
    tool_input_text: str = "order_id"


QUESTION = "Where is my order #4411? It was due on Monday."
MODELS = [
    ("openai", "gpt-4o-mini", "0.00000015", "0.0000006"),
    ("anthropic", "claude-3-5-haiku", "0.0000008", "0.000004"),
]


def _cost(model: tuple[str, str, str, str], prompt: int, completion: int) -> Decimal:
    return Decimal(model[2]) * prompt + Decimal(model[3]) * completion


async def seed(factory: async_sessionmaker[AsyncSession], *, history: bool = True) -> Sample:
    """`history=False` leaves out the ten older runs that only the usage charts need."""
    runs, threads, keys = PostgresStore(factory), ThreadStore(factory), ApiKeyStore(factory)
    memory = PgVectorStore(factory)
    alice = (await keys.create_key("alice", "dashboard")).secret
    bob = (await keys.create_key("bob")).secret
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(7)

    thread = await threads.create_thread(
        ThreadCreate(
            agent_type="support",
            title="Order #4411 is late",
            model="gpt-4o-mini",
            provider="openai",
        ),
        actor="alice",
    )

    # Older runs for the usage charts, two models, varied sizes.
    for i in range(10 if history else 0, 0, -1):
        start = now - timedelta(hours=i * 3)
        model = MODELS[i % 2]
        run = await runs.save_run(
            RunCreate(
                actor="alice",
                name="research-agent" if i % 3 else "support-agent",
                status="succeeded",
                tags=["batch"],
                started_at=start,
                completed_at=start + timedelta(seconds=4 + i),
                request_payload={"topic": f"report {i}"},
                result={"ok": True},
            )
        )
        step = await runs.save_step(
            StepCreate(
                run_id=run.id,
                step_index=0,
                name="draft",
                type="llm",
                started_at=start,
                completed_at=start + timedelta(seconds=3),
                duration_ms=3000,
                input={"topic": f"report {i}"},
                output={"text": "…"},
            )
        )
        for _ in range(1 + i % 3):
            prompt, completion = rng.randint(400, 3000), rng.randint(100, 900)
            await runs.save_llm_call(
                LLMCallCreate(
                    run_id=run.id,
                    step_id=step.id,
                    provider=model[0],
                    model=model[1],
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost_usd=_cost(model, prompt, completion),
                    latency_ms=rng.uniform(300, 2500),
                )
            )

    failed = await runs.save_run(
        RunCreate(
            actor="alice",
            name="research-agent",
            status="failed",
            tags=["prod"],
            started_at=now - timedelta(minutes=40),
            completed_at=now - timedelta(minutes=39),
            request_payload={"topic": "quarterly numbers"},
            error="ToolError: finance_api answered 503 Service Unavailable",
        )
    )
    t = now - timedelta(minutes=40)
    await runs.save_steps(
        [
            StepCreate(
                run_id=failed.id,
                step_index=0,
                name="plan",
                type="llm",
                started_at=t,
                completed_at=t + timedelta(seconds=2),
                duration_ms=2000,
                input={"topic": "quarterly numbers"},
                output={"plan": ["fetch", "summarise"]},
            ),
            StepCreate(
                run_id=failed.id,
                step_index=1,
                name="finance_api",
                type="tool",
                status="failed",
                started_at=t + timedelta(seconds=2),
                completed_at=t + timedelta(seconds=32),
                duration_ms=30000,
                input={"quarter": "Q3"},
                error="503 Service Unavailable",
            ),
        ]
    )

    # The run people open first: nested steps, two LLM calls, a tool, an artifact.
    t = now - timedelta(minutes=12)
    support = await runs.save_run(
        RunCreate(
            actor="alice",
            name="support-agent",
            agent="support-v2",
            status="succeeded",
            thread_id=thread.id,
            tags=["prod", "support"],
            metadata={"customer": "c-1029", "channel": "chat"},
            request_payload={"question": QUESTION},
            result={"answer": "Your order #4411 left the depot today; it arrives Thursday."},
            started_at=t,
            completed_at=t + timedelta(milliseconds=6400),
        )
    )
    root = uuid.uuid4()
    think, search, answer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await runs.save_steps(
        [
            StepCreate(
                id=root,
                run_id=support.id,
                step_index=0,
                name="agent",
                type="chain",
                started_at=t,
                completed_at=t + timedelta(milliseconds=6400),
                duration_ms=6400,
                input={"question": QUESTION},
                output={"done": True},
            ),
            StepCreate(
                run_id=support.id,
                step_index=1,
                parent_step_id=root,
                name="retrieve_policy",
                type="retriever",
                started_at=t + timedelta(milliseconds=50),
                completed_at=t + timedelta(milliseconds=400),
                duration_ms=350,
                input={"query": "late delivery policy"},
                output={"documents": ["Late orders: apologise, give tracking, offer 10%."]},
            ),
            StepCreate(
                id=think,
                run_id=support.id,
                step_index=2,
                parent_step_id=root,
                name="decide_tool",
                type="llm",
                started_at=t + timedelta(milliseconds=420),
                completed_at=t + timedelta(milliseconds=2300),
                duration_ms=1880,
                input={"messages": [{"role": "user", "content": QUESTION}]},
                output={"tool_calls": [{"name": "search_orders", "args": {"order_id": "4411"}}]},
            ),
            StepCreate(
                id=search,
                run_id=support.id,
                step_index=3,
                parent_step_id=root,
                name="search_orders",
                type="tool",
                started_at=t + timedelta(milliseconds=2320),
                completed_at=t + timedelta(milliseconds=3100),
                duration_ms=780,
                input={"order_id": "4411"},
                output={"status": "in transit", "eta": "Thursday", "carrier": "DHL"},
            ),
            StepCreate(
                id=answer,
                run_id=support.id,
                step_index=4,
                parent_step_id=root,
                name="write_answer",
                type="llm",
                started_at=t + timedelta(milliseconds=3150),
                completed_at=t + timedelta(milliseconds=6300),
                duration_ms=3150,
                input={"messages": [{"role": "tool", "content": "in transit, ETA Thursday"}]},
                output={"content": "Your order #4411 left the depot today; it arrives Thursday."},
            ),
        ]
    )
    for step_id, prompt, completion, latency in (
        (think, 812, 46, 1870.0),
        (answer, 1290, 164, 3120.0),
    ):
        await runs.save_llm_call(
            LLMCallCreate(
                run_id=support.id,
                step_id=step_id,
                provider="openai",
                model="gpt-4o-mini",
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=_cost(MODELS[0], prompt, completion),
                latency_ms=latency,
            )
        )
    await runs.save_artifact(
        ArtifactCreate(
            run_id=support.id,
            step_id=answer,
            name="transcript.md",
            content_type="text/markdown",
            size_bytes=2048,
            url="s3://agent-artifacts/support/4411/transcript.md",
        )
    )

    t = now - timedelta(seconds=20)
    running = await runs.save_run(
        RunCreate(
            actor="alice",
            name="support-agent",
            status="running",
            tags=["prod"],
            thread_id=thread.id,
            started_at=t,
            request_payload={"question": "And a refund?"},
        )
    )
    await runs.save_step(
        StepCreate(
            run_id=running.id,
            step_index=0,
            name="retrieve_policy",
            type="retriever",
            started_at=t,
            completed_at=t + timedelta(milliseconds=300),
            duration_ms=300,
            input={"query": "refund policy"},
            output={"documents": ["Refunds: 14 days."]},
        )
    )

    bob_run = await runs.save_run(RunCreate(actor="bob", name="bob-private", status="succeeded"))

    await threads.add_messages(
        thread.id,
        [
            MessageCreate(role="system", content="You are a helpful support agent for Acme Shop."),
            MessageCreate(role="user", content=QUESTION),
            MessageCreate(
                role="assistant",
                content=None,
                tool_calls=[
                    {"id": "call_1", "name": "search_orders", "args": {"order_id": "4411"}}
                ],
            ),
            MessageCreate(
                role="tool",
                content='{"status": "in transit", "eta": "Thursday"}',
                metadata={"tool_call_id": "call_1"},
            ),
            MessageCreate(
                role="assistant",
                content="Your order #4411 left the depot today; it arrives Thursday. "
                "Sorry for the wait!",
            ),
            MessageCreate(role="user", content="And can I get a refund for the delay?"),
        ],
        actor="alice",
    )

    dim = get_settings().embedding_dim
    topics = {
        "shipping": [
            "Orders ship within 2 business days.",
            "Late orders get a tracking link.",
            "DHL delivers on weekdays only.",
            "International orders take 7-10 days.",
        ],
        "refunds": [
            "Refunds are possible within 14 days.",
            "Refunds go back to the card used.",
            "Late deliveries earn a 10% voucher.",
        ],
    }
    items = []
    for t_i, (topic, texts) in enumerate(topics.items()):
        base = [rng.gauss(0, 1) for _ in range(dim)]
        for j, text in enumerate(texts):
            noise = 0.35 + 0.25 * j
            vec = [b + rng.gauss(0, noise) + (0.5 if k == t_i else 0) for k, b in enumerate(base)]
            items.append(
                EmbeddingCreate(
                    actor="alice",
                    namespace="policies",
                    source_type="doc",
                    source_id=f"{topic}.md#{j}",
                    content=text,
                    embedding=vec,
                    metadata={"topic": topic},
                )
            )
    items.append(
        EmbeddingCreate(
            actor="alice",
            namespace="chats",
            source_type="message",
            source_id=str(thread.id),
            content=QUESTION,
            embedding=[rng.gauss(0, 1) for _ in range(dim)],
            run_id=support.id,
        )
    )
    stored = await memory.add_embeddings(items)
    return Sample(
        alice_key=alice,
        bob_key=bob,
        support_run=support.id,
        running_run=running.id,
        failed_run=failed.id,
        bob_run=bob_run.id,
        thread=thread.id,
        embedding=stored[0].id,
    )
