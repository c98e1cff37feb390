"""/memory over HTTP: batches, scoped search, delete by source, and bad vectors."""

from __future__ import annotations

from typing import Any

from chad_memory.settings import get_settings
from tests.api.conftest import Api

DIM = get_settings().embedding_dim


def unit(i: int, j: int | None = None) -> list[float]:
    """A vector pointing along axis i (and j, if given): cosine scores are easy to reason about."""
    v = [0.0] * DIM
    v[i] = 1.0
    if j is not None:
        v[j] = 1.0
    return v


async def test_memory_is_scoped_to_the_caller(api: Api) -> None:
    c = api.client
    run = (await c.post("/runs", json={"name": "r"}, headers=api.alice)).json()
    added = await c.post(
        "/memory",
        json={
            "items": [
                {
                    "source_id": "doc-1",
                    "content": "alpha",
                    "embedding": unit(0),
                    "run_id": run["id"],
                },
                {"source_id": "doc-1", "content": "beta", "embedding": unit(0, 1)},
                {
                    "source_id": "doc-2",
                    "namespace": "notes",
                    "content": "gamma",
                    "embedding": unit(1),
                    "metadata": {"lang": "en"},
                },
            ]
        },
        headers=api.alice,
    )
    assert added.status_code == 201, added.text
    items = added.json()["items"]
    assert [i["content"] for i in items] == ["alpha", "beta", "gamma"]
    assert all(i["actor"] == "alice" for i in items)
    assert "embedding" not in items[0]
    bobs = await c.post(
        "/memory",
        json={"items": [{"source_id": "doc-1", "content": "bob's", "embedding": unit(0)}]},
        headers=api.bob,
    )
    assert bobs.status_code == 201

    async def search(headers: dict[str, str], **body: Any) -> list[tuple[str, float]]:
        response = await c.post(
            "/memory/search", json={"embedding": unit(0), **body}, headers=headers
        )
        assert response.status_code == 200, response.text
        return [(h["content"], round(h["score"], 3)) for h in response.json()["items"]]

    assert await search(api.alice, k=5) == [("alpha", 1.0), ("beta", 0.707), ("gamma", 0.0)]
    assert await search(api.bob, k=5) == [("bob's", 1.0)]
    assert await search(api.alice, k=1) == [("alpha", 1.0)]
    assert await search(api.alice, namespace="notes") == [("gamma", 0.0)]
    assert await search(api.alice, source_id="doc-1", min_score=0.9) == [("alpha", 1.0)]
    assert await search(api.alice, metadata={"lang": "en"}) == [("gamma", 0.0)]

    # Delete by source removes only the caller's rows.
    deleted = await c.delete("/memory", params={"source_id": "doc-1"}, headers=api.alice)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": 2}
    assert await search(api.alice) == [("gamma", 0.0)]
    assert await search(api.bob) == [("bob's", 1.0)]
    again = await c.delete("/memory", params={"source_id": "doc-1"}, headers=api.alice)
    assert again.json() == {"deleted": 0}
    assert (await c.delete("/memory", headers=api.alice)).status_code == 422

    # Memory may only be tied to the caller's own runs.
    foreign = await c.post(
        "/memory",
        json={"items": [{"content": "x", "embedding": unit(2), "run_id": run["id"]}]},
        headers=api.bob,
    )
    assert foreign.status_code == 403
    missing = await c.post(
        "/memory",
        json={
            "items": [
                {
                    "content": "x",
                    "embedding": unit(2),
                    "run_id": "00000000-0000-0000-0000-000000000000",
                }
            ]
        },
        headers=api.alice,
    )
    assert missing.status_code == 404


async def test_bad_memory_requests_are_4xx(api: Api) -> None:
    c, h = api.client, api.alice
    bad_adds: list[Any] = [
        {"items": []},
        {"items": [{"embedding": [1.0] * (DIM - 1)}]},  # wrong length
        {"items": [{"embedding": ["a"] * DIM}]},
        {"items": [{"embedding": unit(0), "content": "nul\u0000"}]},
        {"items": [{"embedding": unit(0), "actor": "bob"}]},
        {"items": [{"embedding": [1.0]} for _ in range(1001)]},  # over the batch limit
        {"embedding": unit(0)},
    ]
    for body in bad_adds:
        response = await c.post("/memory", json=body, headers=h)
        assert response.status_code == 422, (str(body)[:80], response.text[:200])
        assert response.json()["detail"]
    wrong_dim = await c.post("/memory", json={"items": [{"embedding": [1.0, 2.0]}]}, headers=h)
    assert f"expected {DIM}" in wrong_dim.json()["detail"]
    nan = b'{"items": [{"embedding": [NaN' + b", 0.0" * (DIM - 1) + b"]}]}"
    response = await c.post(
        "/memory", content=nan, headers={**h, "Content-Type": "application/json"}
    )
    assert response.status_code == 422

    bad_searches: list[dict[str, Any]] = [
        {"embedding": unit(0), "k": 0},
        {"embedding": unit(0), "k": 101},
        {"embedding": [1.0, 0.0]},
        {"embedding": [0.0] * DIM},
        {"embedding": unit(0), "min_score": 2},
        {"embedding": unit(0), "metadata": "x"},
        {"k": 3},
    ]
    for body in bad_searches:
        response = await c.post("/memory/search", json=body, headers=h)
        assert response.status_code == 422, (str(body)[:80], response.text[:200])
    ok = await c.post("/memory/search", json={"embedding": unit(0), "k": 100}, headers=h)
    assert ok.status_code == 200
    assert ok.json() == {"items": []}
