"""GET /search and POST /memory/search with a query, over HTTP."""

from __future__ import annotations

from typing import Any

from chad_memory.settings import get_settings
from tests.api.conftest import Api

DIM = get_settings().embedding_dim


def unit(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


async def _seed(api: Api) -> dict[str, Any]:
    c = api.client
    run = (
        await c.post(
            "/runs",
            json={"name": "refund triage", "tags": ["prod"], "result": {"order": "order-4411"}},
            headers=api.alice,
        )
    ).json()
    steps = await c.post(
        f"/runs/{run['id']}/steps",
        json=[
            {"step_index": i, "name": f"lookup {i}", "output": {"text": f"needle {i} 配送状況"}}
            for i in range(5)
        ],
        headers=api.alice,
    )
    assert steps.status_code == 201, steps.text
    memory = await c.post(
        "/memory",
        json={"items": [{"content": "customer prefers email", "embedding": unit(0)}]},
        headers=api.alice,
    )
    assert memory.status_code == 201, memory.text
    await c.post("/runs", json={"name": "bob's needle order-4411"}, headers=api.bob)
    return dict(run)


async def test_search_over_http(api: Api) -> None:
    c = api.client
    run = await _seed(api)

    answer = await c.get("/search", params={"q": "order-4411"}, headers=api.alice)
    assert answer.status_code == 200, answer.text
    [hit] = answer.json()["items"]
    assert (hit["kind"], hit["id"], hit["run_id"], hit["title"]) == (
        "run",
        run["id"],
        run["id"],
        "refund triage",
    )
    start, end = hit["highlights"][0]
    assert hit["snippet"][start:end] == "order-4411"

    cjk = await c.get("/search", params={"q": "状況", "kind": "step"}, headers=api.alice)
    assert len(cjk.json()["items"]) == 5

    both = await c.get(
        "/search",
        params=[("q", "needle OR email"), ("kind", "step"), ("kind", "memory")],
        headers=api.alice,
    )
    assert {h["kind"] for h in both.json()["items"]} == {"step", "memory"}

    filtered = await c.get(
        "/search",
        params={"q": "needle OR refund", "tag": "prod", "metadata": "{}", "run_id": run["id"]},
        headers=api.alice,
    )
    assert {h["kind"] for h in filtered.json()["items"]} == {"step", "run"}

    # Paging: a cursor carries on exactly where the page stopped.
    first = (await c.get("/search", params={"q": "needle", "limit": 3}, headers=api.alice)).json()
    assert len(first["items"]) == 3
    rest = await c.get(
        "/search",
        params={"q": "needle", "limit": 3, "cursor": first["next_cursor"]},
        headers=api.alice,
    )
    assert rest.json()["next_cursor"] is None
    ids = [h["id"] for h in first["items"] + rest.json()["items"]]
    assert len(ids) == len(set(ids)) == 5

    bobs = (await c.get("/search", params={"q": "needle"}, headers=api.bob)).json()["items"]
    assert [h["title"] for h in bobs] == ["bob's needle order-4411"]


async def test_search_refuses_what_it_cannot_answer(api: Api) -> None:
    c = api.client
    assert (await c.get("/search", params={"q": "x"})).status_code == 401
    bad: list[dict[str, str | int]] = [
        {},
        {"q": ""},
        {"q": "-only"},
        {"q": "x" * 501},
        {"q": "x", "kind": "artifact"},
        {"q": "x", "actor": "bob"},
        {"q": "x", "limit": 0},
        {"q": "x", "limit": 101},
        {"q": "x", "metadata": "[1]"},
        {"q": "x", "cursor": "forged"},
        {"q": "x", "kind": "thread", "namespace": "n"},
        {"q": "x", "created_after": "yesterday"},
    ]
    for params in bad:
        response = await c.get("/search", params=params, headers=api.alice)
        assert response.status_code == 422, (params, response.text)
        assert "detail" in response.json()


async def test_memory_search_with_a_query(api: Api) -> None:
    c = api.client
    added = await c.post(
        "/memory",
        json={
            "items": [
                {"content": "invoice INV-204 paid", "embedding": unit(3)},
                {"content": "the weather is nice", "embedding": unit(0)},
            ]
        },
        headers=api.alice,
    )
    assert added.status_code == 201

    words = await c.post("/memory/search", json={"query": "INV-204"}, headers=api.alice)
    assert words.status_code == 200, words.text
    [hit] = words.json()["items"]
    assert (hit["content"], hit["keyword_rank"], hit["vector_rank"]) == (
        "invoice INV-204 paid",
        1,
        None,
    )

    fused = await c.post(
        "/memory/search", json={"query": "INV-204", "embedding": unit(0), "k": 2}, headers=api.alice
    )
    items = fused.json()["items"]
    assert {(h["content"], h["keyword_rank"], h["vector_rank"]) for h in items} == {
        ("invoice INV-204 paid", 1, 2),
        ("the weather is nice", None, 1),
    }
    assert items[0]["score"] > items[1]["score"]

    assert (await c.post("/memory/search", json={"query": "INV-204"}, headers=api.bob)).json() == {
        "items": []
    }
    for body in (
        {},
        {"query": ""},
        {"query": "-x"},
        {"query": "x", "min_score": 0.5},
        {"query": "x", "embedding": [1.0]},
    ):
        response = await c.post("/memory/search", json=body, headers=api.alice)
        assert response.status_code == 422, (body, response.text)
