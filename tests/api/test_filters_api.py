"""Metadata and run filters over HTTP: containment, 422 naming the parameter, empty pages."""

from __future__ import annotations

import json
from typing import Any

from tests.api.conftest import Api


async def _run(api: Api, **body: Any) -> str:
    made = await api.client.post("/runs", json=body, headers=api.alice)
    assert made.status_code == 201, made.text
    run_id: str = made.json()["id"]
    return run_id


async def test_runs_filters_over_http(api: Api) -> None:
    c, h = api.client, api.alice
    search = await _run(api, metadata={"team": "search", "env": {"region": "eu"}}, tags=["a"])
    ads = await _run(api, metadata={"team": "ads"}, tags=["a", "b"], agent="coder")
    await api.client.post("/runs", json={"metadata": {"team": "search"}}, headers=api.bob)
    await c.post(f"/runs/{ads}/llm-calls", json={"cost_usd": "0.5"}, headers=h)

    async def ids(**params: Any) -> list[str]:
        got = await c.get("/runs", params=params, headers=h)
        assert got.status_code == 200, got.text
        assert got.json()["total"] == len(got.json()["items"])
        return [r["id"] for r in got.json()["items"]]

    assert await ids(metadata=json.dumps({"team": "search"})) == [search]
    assert await ids(metadata='{"env":{"region":"eu"}}') == [search]
    assert await ids(metadata="{}") == [ads, search]
    assert await ids(agent="coder") == [ads]
    assert await ids(tags_any=["b", "zzz"]) == [ads]
    assert await ids(tags_all=["a", "b"]) == [ads]
    assert await ids(tags_all=["a"]) == [ads, search]
    assert await ids(min_cost_usd="0.5") == [ads]
    assert await ids(max_cost_usd="0.5") == [search]
    assert await ids(min_duration_ms="0.0") == []  # neither run has both timestamps
    # Matching nothing is an empty page, not an error.
    assert await ids(metadata='{"team":"nobody"}') == []

    for bad in ('{"team":', "[1, 2]", '"search"', "null", "team=search"):
        answer = await c.get("/runs", params={"metadata": bad}, headers=h)
        assert answer.status_code == 422, bad
        assert answer.json()["detail"][0]["loc"] == ["query", "metadata"], answer.text
    answer = await c.get("/runs", params={"min_cost_usd": "1e-3"}, headers=h)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "min_cost_usd"]


async def test_threads_and_messages_filter_by_metadata_over_http(api: Api) -> None:
    c, h = api.client, api.alice
    made = []
    for meta in ({"topic": "billing"}, {"topic": "bugs"}):
        got = await c.post("/threads", json={"agent_type": "chat", "metadata": meta}, headers=h)
        made.append(got.json()["id"])
    listed = await c.get("/threads", params={"metadata": '{"topic":"billing"}'}, headers=h)
    assert [t["id"] for t in listed.json()["items"]] == [made[0]]
    assert listed.json()["total"] == 1

    thread = made[0]
    messages = [
        {"role": "user", "content": "hi", "metadata": {"lang": "en"}},
        {"role": "assistant", "content": "salut", "metadata": {"lang": "fr"}},
    ]
    await c.post(f"/threads/{thread}/messages", json=messages, headers=h)
    got = await c.get(
        f"/threads/{thread}/messages", params={"metadata": '{"lang":"fr"}'}, headers=h
    )
    assert [m["content"] for m in got.json()["items"]] == ["salut"]
    assert got.json()["total"] == 1
    none = await c.get(f"/threads/{thread}/messages", params={"metadata": '{"x":1}'}, headers=h)
    assert none.json() == {"items": [], "total": 0, "next_cursor": None}
    for path in ("/threads", f"/threads/{thread}/messages"):
        bad = await c.get(path, params={"metadata": "{oops"}, headers=h)
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "metadata"]
