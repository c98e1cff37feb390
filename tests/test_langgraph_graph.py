"""A real LangGraph graph compiled with `store=ChadMemoryStore(...)`: its nodes write and
read long-term memories, across invocations, scoped to the store's actor."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.integrations.langgraph import ChadMemoryStore
from tests.langgraph_support import index_config


class State(TypedDict, total=False):
    user: str
    message: str
    recalled: list[str]


async def remember(state: State, *, store: BaseStore) -> State:
    """Keep what the user said ("I like ...") as a memory in the user's namespace."""
    text = state["message"]
    if text.lower().startswith("i like"):
        await store.aput(("memories", state["user"]), str(uuid.uuid4()), {"text": text})
    return {}


async def recall(state: State, *, store: BaseStore) -> State:
    found = await store.asearch(("memories", state["user"]), query=state["message"], limit=2)
    return {"recalled": [item.value["text"] for item in found]}


def count_memories(state: State, *, store: BaseStore) -> State:
    """A sync node: LangGraph runs it on a worker thread; the store's sync API is used."""
    items = store.search(("memories", state["user"]), limit=100)
    store.put(("stats", state["user"]), "count", {"memories": len(items)})
    return {}


def build(store: ChadMemoryStore) -> Any:
    graph = StateGraph(State)
    graph.add_node("remember", remember)
    graph.add_node("recall", recall)
    graph.add_node("count", count_memories)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", "count")
    graph.add_edge("count", END)
    return graph.compile(store=store)


async def test_graph_nodes_write_and_read_memories(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    store = ChadMemoryStore(session_factory, actor="alice", index=index_config(fields=["text"]))
    app = build(store)
    for said in ["I like green tea", "I like mountain hiking", "I like jazz records"]:
        await app.ainvoke({"user": "u1", "message": said})
    out = await app.ainvoke({"user": "u1", "message": "any good mountain hiking trips?"})
    assert out["recalled"][0] == "I like mountain hiking"
    assert len(out["recalled"]) == 2
    count = await store.aget(("stats", "u1"), "count")
    assert count is not None
    assert count.value == {"memories": 3}

    # Another user of the same actor has no memories yet; another actor sees none of these.
    assert (await app.ainvoke({"user": "u2", "message": "hiking?"}))["recalled"] == []
    other = build(
        ChadMemoryStore(session_factory, actor="bob", index=index_config(fields=["text"]))
    )
    assert (await other.ainvoke({"user": "u1", "message": "mountain hiking"}))["recalled"] == []


async def test_a_traced_graph_is_one_run_with_its_nodes_as_steps(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from chad_memory import PostgresStore
    from chad_memory.integrations.langchain import ChadMemoryTracer

    runs = PostgresStore(session_factory)
    tracer = ChadMemoryTracer(runs, actor="alice")
    app = build(ChadMemoryStore(session_factory, actor="alice", index=index_config(["text"])))
    config: Any = {"callbacks": [tracer], "configurable": {"thread_id": "chat-9"}}
    await app.ainvoke({"user": "u1", "message": "I like rain"}, config=config)
    await tracer.aflush()
    (run,) = (await runs.list_runs()).items
    assert run.name == "LangGraph"
    assert run.metadata["thread_id"] == "chat-9"  # LangGraph copies it into the metadata
    names = [s.name for s in await runs.get_steps(run.id)]
    assert [n for n in names if n in ("remember", "recall", "count")] == [
        "remember",
        "recall",
        "count",
    ]
