"""ChadMemoryTracer with real LangChain runnables, fake chat models and a tool, on a real
PostgresStore."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool

from chad_memory import InvalidInputError, PostgresStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.integrations.langchain import ChadMemoryTracer
from chad_memory.schemas import LLMCallCreate, RunCreate, RunUpdate, StepCreate


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def tool_calling_model() -> GenericFakeChatModel:
    return GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}],
                    usage_metadata={
                        "input_tokens": 12,
                        "output_tokens": 5,
                        "total_tokens": 17,
                        "input_token_details": {"cache_read": 4},
                        "output_token_details": {"reasoning": 2},
                    },
                ),
                AIMessage(
                    content="The sum is 5.",
                    usage_metadata={"input_tokens": 20, "output_tokens": 6, "total_tokens": 26},
                ),
            ]
        )
    )


def agent(model: GenericFakeChatModel) -> RunnableLambda[str, str]:
    """A real runnable: model -> tool -> model, each a nested LangChain run."""

    def run(question: str) -> str:
        messages: list[BaseMessage] = [HumanMessage(content=question)]
        reply = model.invoke(messages)
        messages.append(reply)
        for call in reply.tool_calls:
            result = add.invoke(call)
            assert isinstance(result, ToolMessage)
            messages.append(result)
        final = model.invoke(messages)
        return str(final.content)

    async def arun(question: str) -> str:
        messages: list[BaseMessage] = [HumanMessage(content=question)]
        reply = await model.ainvoke(messages)
        messages.append(reply)
        for call in reply.tool_calls:
            messages.append(await add.ainvoke(call))
        final = await model.ainvoke(messages)
        return str(final.content)

    return RunnableLambda(run, afunc=arun, name="sum_agent")


CONFIG_METADATA = {"ls_model_name": "fake-sum-1", "thread_id": "conversation-7"}


async def _check_agent_run(store: PostgresStore, run_id: uuid.UUID) -> None:
    run = await store.get_run(run_id, actor="alice")
    assert run.name == "sum_agent"
    assert run.status == "succeeded"
    assert run.request_payload == {"input": "What is 2 + 3?"}
    assert run.result == {"output": "The sum is 5."}
    assert run.metadata["thread_id"] == "conversation-7"
    steps = await store.get_steps(run_id)
    assert [(s.type, s.name) for s in steps] == [
        ("chat_model", "GenericFakeChatModel"),
        ("tool", "add"),
        ("chat_model", "GenericFakeChatModel"),
    ]
    assert all(s.parent_step_id is None for s in steps)  # children of the top-level run
    first = steps[0]
    assert first.input is not None
    # Messages as plain JSON: type and content, no LangChain constructor envelope or repr.
    assert first.input["messages"][0][0]["type"] == "human"
    assert first.input["messages"][0][0]["content"] == "What is 2 + 3?"
    assert "lc" not in json.dumps(first.input)
    assert steps[1].output is not None
    assert steps[1].output["output"]["content"] == "5"
    calls = await store.get_llm_calls(run_id)
    assert len(calls) == 2
    by_step = {c.step_id: c for c in calls}
    call = by_step[first.id]
    assert call.provider == "genericfakechatmodel"
    assert call.model == "fake-sum-1"
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (12, 5, 17)
    assert call.request is not None
    assert (call.cached_tokens, call.cache_write_tokens, call.reasoning_tokens) == (4, 0, 2)
    assert "usage" not in call.request
    assert (call.cost_usd, call.cost_source) == (None, None)  # a fake model has no price
    assert call.request["thread_id"] == "conversation-7"
    assert call.latency_ms is not None
    response: Any = call.response
    assert response["generations"][0]["tool_calls"][0]["name"] == "add"
    assert sum(c.total_tokens for c in calls) == 43


async def test_async_invocation_records_run_steps_and_llm_calls(store: PostgresStore) -> None:
    tracer = ChadMemoryTracer(store, actor="alice")
    config: RunnableConfig = {"callbacks": [tracer], "metadata": CONFIG_METADATA}
    answer = await agent(tool_calling_model()).ainvoke("What is 2 + 3?", config=config)
    assert answer == "The sum is 5."
    await tracer.aflush()
    runs = (await store.list_runs()).items
    assert len(runs) == 1
    await _check_agent_run(store, runs[0].id)


async def test_sync_invocation_from_a_worker_thread(store: PostgresStore) -> None:
    tracer = ChadMemoryTracer(store, actor="alice")
    config: RunnableConfig = {"callbacks": [tracer], "metadata": CONFIG_METADATA}
    answer = await asyncio.to_thread(agent(tool_calling_model()).invoke, "What is 2 + 3?", config)
    assert answer == "The sum is 5."
    await tracer.aflush()
    runs = (await store.list_runs()).items
    assert len(runs) == 1
    await _check_agent_run(store, runs[0].id)


def test_sync_program_without_an_event_loop(database_url: str) -> None:
    """A plain sync program: the tracer writes on its own loop thread; flush() waits."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    store = PostgresStore(get_session_factory(engine))
    tracer = ChadMemoryTracer(store, actor="alice")
    chain: Any = RunnableLambda(lambda x: x * 2, name="double") | RunnableLambda(
        lambda x: x + 1, name="inc"
    )
    assert chain.invoke(5, config={"callbacks": [tracer]}) == 11
    tracer.flush(timeout=30)
    assert tracer.failures == 0

    async def read() -> Any:
        runs = (await store.list_runs()).items
        return runs, await store.get_steps(runs[0].id)

    assert tracer._private is not None
    runs, steps = asyncio.run_coroutine_threadsafe(read(), tracer._private.loop).result(30)
    asyncio.run_coroutine_threadsafe(engine.dispose(), tracer._private.loop).result(30)
    assert [r.name for r in runs] == ["RunnableSequence"]
    assert [(s.name, s.input, s.output) for s in steps] == [
        ("double", {"input": 5}, {"output": 10}),
        ("inc", {"input": 10}, {"output": 11}),
    ]


async def test_failure_is_recorded_and_the_exception_passes_through(store: PostgresStore) -> None:
    tracer = ChadMemoryTracer(store, actor="alice")

    def explode(_: Any) -> str:
        raise ValueError("the tool broke")

    chain: Any = FakeListChatModel(responses=["ok"]) | RunnableLambda(explode, name="explode")
    with pytest.raises(ValueError, match="the tool broke"):
        await chain.ainvoke("hi", config={"callbacks": [tracer]})
    await tracer.aflush()
    (run,) = (await store.list_runs()).items
    assert run.status == "failed"
    assert "the tool broke" in (run.error or "")
    steps = await store.get_steps(run.id)
    assert [(s.type, s.status) for s in steps] == [
        ("chat_model", "succeeded"),
        ("chain", "failed"),
    ]
    assert "the tool broke" in (steps[1].error or "")
    (call,) = await store.get_llm_calls(run.id)
    assert call.provider == "fakelistchatmodel"
    response: Any = call.response
    generation = response["generations"][0]
    assert (generation["type"], generation["content"]) == ("ai", "ok")


async def test_abatch_and_parallel_branches_are_separate_runs_with_right_parents(
    store: PostgresStore,
) -> None:
    tracer = ChadMemoryTracer(store, actor="alice")
    inner: Any = RunnableLambda(lambda x: x + 1, name="inner")
    outer: Any = RunnableLambda(lambda x: inner.invoke(x) * 10, name="outer")
    branches = RunnableLambda(lambda x: x, name="start") | {
        "left": outer,
        "right": RunnableLambda(lambda x: -x, name="right"),
    }
    results = await branches.abatch([1, 2, 3], config={"callbacks": [tracer]})
    assert results == [
        {"left": 20, "right": -1},
        {"left": 30, "right": -2},
        {"left": 40, "right": -3},
    ]
    await tracer.aflush()
    runs = (await store.list_runs()).items
    assert len(runs) == 3
    inputs = set()
    for run in runs:
        payload: Any = run.request_payload
        inputs.add(payload["input"])
        steps = {s.name: s for s in await store.get_steps(run.id)}
        assert steps["inner"].parent_step_id == steps["outer"].id
        assert steps["outer"].parent_step_id == steps["RunnableParallel<left,right>"].id
        assert steps["right"].parent_step_id == steps["RunnableParallel<left,right>"].id
        assert steps["start"].parent_step_id is None
        assert steps["inner"].input == {"input": payload["input"]}
    assert inputs == {1, 2, 3}


class CountingTarget:
    """A PostgresStore behind a counter of the calls the tracer makes (not a mock: every
    call reaches the real store)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.calls: list[str] = []

    async def save_run(self, run: RunCreate) -> Any:
        self.calls.append("save_run")
        return await self.store.save_run(run)

    async def update_run(self, run_id: uuid.UUID, changes: RunUpdate) -> Any:
        self.calls.append("update_run")
        return await self.store.update_run(run_id, changes)

    async def save_steps(self, steps: Sequence[StepCreate]) -> Any:
        self.calls.append("save_steps")
        return await self.store.save_steps(steps)

    async def save_llm_call(self, call: LLMCallCreate) -> Any:
        self.calls.append("save_llm_call")
        return await self.store.save_llm_call(call)


async def test_a_thousand_steps_are_a_handful_of_writes(store: PostgresStore) -> None:
    target = CountingTarget(store)
    tracer = ChadMemoryTracer(target, actor="alice")
    step: Any = RunnableLambda(lambda x: x + 1, name="step")

    def loop(x: int) -> int:
        for _ in range(999):
            x = step.invoke(x)
        return x

    assert RunnableLambda(loop, name="loop").invoke(0, config={"callbacks": [tracer]}) == 999
    await tracer.aflush()
    assert target.calls == ["save_run", "save_steps", "save_steps"]
    (run,) = (await store.list_runs()).items
    steps = await store.get_steps(run.id)
    assert len(steps) == 999
    assert [s.output for s in steps[:3]] == [{"output": 1}, {"output": 2}, {"output": 3}]


async def test_a_storage_failure_never_breaks_the_chain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A real store on a database that is not there.
    engine = create_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:9/nowhere", pool_size=1, max_overflow=0
    )
    tracer = ChadMemoryTracer(PostgresStore(get_session_factory(engine)), actor="alice")
    chain = FakeListChatModel(responses=["fine"]) | RunnableLambda(lambda m: m.content)
    with caplog.at_level(logging.ERROR, logger="chad_memory.integrations.langchain"):
        assert await chain.ainvoke("hi", config={"callbacks": [tracer]}) == "fine"
        with pytest.raises(ZeroDivisionError):
            await (chain | RunnableLambda(lambda _: 1 / 0)).ainvoke(
                "hi", config={"callbacks": [tracer]}
            )
        await tracer.aflush()
    await engine.dispose()
    assert tracer.failures == 2
    assert "could not store run" in caplog.text


async def test_thread_ids_link_runs_to_existing_threads(
    store: PostgresStore, session_factory: Any
) -> None:
    from chad_memory import ThreadCreate, ThreadStore

    thread = await ThreadStore(session_factory).create_thread(
        ThreadCreate(agent_type="test"), actor="alice"
    )
    tracer = ChadMemoryTracer(store, actor="alice")
    chain = RunnableLambda(lambda x: x, name="echo")
    for thread_id in [str(thread.id), str(uuid.uuid4()), "not-a-uuid"]:
        await chain.ainvoke(1, config={"callbacks": [tracer], "metadata": {"thread_id": thread_id}})
    await tracer.aflush()
    assert tracer.failures == 0
    runs = {r.metadata["thread_id"]: r for r in (await store.list_runs()).items}
    assert runs[str(thread.id)].thread_id == thread.id
    assert all(r.thread_id is None for k, r in runs.items() if k != str(thread.id))


def test_construction_errors(store: PostgresStore) -> None:
    with pytest.raises(InvalidInputError, match="actor"):
        ChadMemoryTracer(store)
    with pytest.raises(InvalidInputError, match="target"):
        ChadMemoryTracer(object(), actor="alice")


async def test_retriever_and_text_llm_steps(store: PostgresStore) -> None:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.retrievers import BaseRetriever

    class Notes(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            return [Document(page_content=f"note about {query}", metadata={"n": 1})]

    tracer = ChadMemoryTracer(store, actor="alice")
    chain: Any = (
        Notes()
        | RunnableLambda(lambda docs: docs[0].page_content, name="first")
        | FakeListLLM(responses=["summary"])
    )
    assert await chain.ainvoke("tides", config={"callbacks": [tracer]}) == "summary"
    await tracer.aflush()
    (run,) = (await store.list_runs()).items
    steps = await store.get_steps(run.id)
    assert [(s.type, s.name) for s in steps] == [
        ("retriever", "Notes"),
        ("chain", "first"),
        ("llm", "FakeListLLM"),
    ]
    assert steps[0].output == {
        "documents": [
            {"page_content": "note about tides", "metadata": {"n": 1}, "type": "Document"}
        ]
    }
    (call,) = await store.get_llm_calls(run.id)
    assert call.provider == "fakelist"  # LangChain strips the "llm" suffix
    assert call.step_id == steps[2].id
