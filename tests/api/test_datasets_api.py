"""Datasets (versions, items from runs, JSON Lines), experiments recorded by any door,
and compare: on the real app and database."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.api.conftest import Api
from tests.otlp.test_otlp_http import attr, body, span


async def _post(api: Api, path: str, payload: Any, status: int = 201, **kw: Any) -> Any:
    resp = await api.client.post(path, json=payload, headers=kw.pop("headers", api.alice), **kw)
    assert resp.status_code == status, resp.text
    return resp.json()


async def _items(api: Api, dataset: str, **params: Any) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/datasets/{dataset}/items", params=params, headers=api.alice)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def test_items_from_runs_in_bulk_and_every_change_a_version(api: Api) -> None:
    c, h = api.client, api.alice
    run = await _post(api, "/runs", {"name": "qa", "request_payload": {"q": "2+2"}, "result": "4"})
    step = (
        await _post(api, f"/runs/{run['id']}/steps", {"step_index": 0, "input": "i", "output": "o"})
    )[0]
    ds = await _post(api, "/datasets", {"name": "arith", "description": "sums"})
    assert ds["version"] == 0
    await _post(api, "/datasets", {"name": "arith"}, status=409)

    from_run = await _post(api, f"/datasets/{ds['id']}/items/from-run", {"run_id": run["id"]})
    assert from_run["version"] == 1
    (item,) = from_run["items"]
    assert (item["input"], item["expected_output"], item["source_run_id"]) == (
        {"q": "2+2"},
        "4",
        run["id"],
    )
    from_step = await _post(
        api,
        f"/datasets/{ds['id']}/items/from-run",
        {"run_id": run["id"], "step_id": step["id"], "expected_output": "O!"},
    )
    assert (from_step["items"][0]["input"], from_step["items"][0]["expected_output"]) == ("i", "O!")
    lines = "\n".join(
        json.dumps({"input": {"q": f"{n}+{n}"}, "expected_output": str(2 * n)}) for n in range(3)
    )
    bulk = await c.post(
        f"/datasets/{ds['id']}/items/jsonl",
        content=lines + "\n\n",
        headers={**h, "Content-Type": "application/x-ndjson"},
    )
    assert bulk.status_code == 201, bulk.text
    assert bulk.json()["version"] == 3
    assert len(bulk.json()["items"]) == 3
    bad = await c.post(
        f"/datasets/{ds['id']}/items/jsonl",
        content='{"input": 1}\n{"nope": 2}\n',
        headers={**h, "Content-Type": "application/x-ndjson"},
    )
    assert bad.status_code == 422
    assert "line 2" in bad.text

    edited = await c.put(
        f"/datasets/{ds['id']}/items/{item['item_id']}",
        json={"input": {"q": "2+2"}, "expected_output": "four"},
        headers=h,
    )
    assert edited.json()["version"] == 4
    gone = await c.delete(
        f"/datasets/{ds['id']}/items/{from_step['items'][0]['item_id']}", headers=h
    )
    assert gone.json()["version"] == 5
    assert (await c.get(f"/datasets/{ds['id']}", headers=h)).json()["version"] == 5

    now = await _items(api, ds["id"])
    assert len(now) == 4
    assert {i["expected_output"] for i in now if i["item_id"] == item["item_id"]} == {"four"}
    assert len(await _items(api, ds["id"], version=1)) == 1
    assert (await _items(api, ds["id"], version=1))[0]["expected_output"] == "4"
    assert len(await _items(api, ds["id"], version=4)) == 5
    assert await _items(api, ds["id"], version=0) == []
    assert (
        await c.get(f"/datasets/{ds['id']}/items", params={"version": 6}, headers=h)
    ).status_code == 422
    missing = await c.delete(f"/datasets/{ds['id']}/items/{uuid.uuid4()}", headers=h)
    assert missing.status_code == 404


async def test_datasets_are_owned(api: Api) -> None:
    c = api.client
    ds = await _post(api, "/datasets", {"name": "mine"})
    bobs_run = await _post(api, "/runs", {"name": "b"}, headers=api.bob)
    for method, path, payload in (
        ("GET", f"/datasets/{ds['id']}", None),
        ("GET", f"/datasets/{ds['id']}/items", None),
        ("POST", f"/datasets/{ds['id']}/items", [{"input": 1}]),
        ("DELETE", f"/datasets/{ds['id']}", None),
    ):
        resp = await c.request(method, path, json=payload, headers=api.bob)
        assert resp.status_code == 403, (method, path, resp.text)
    # Alice cannot keep Bob's run in her dataset, neither way.
    took = await c.post(
        f"/datasets/{ds['id']}/items/from-run", json={"run_id": bobs_run["id"]}, headers=api.alice
    )
    assert took.status_code == 403
    named = await c.post(
        f"/datasets/{ds['id']}/items", json=[{"source_run_id": bobs_run["id"]}], headers=api.alice
    )
    assert named.status_code == 403
    assert (await c.get("/datasets", headers=api.bob)).json()["items"] == []
    bobs = await _post(
        api, "/experiments", {"name": "x", "dataset_id": ds["id"]}, status=403, headers=api.bob
    )
    assert "another actor" in bobs["detail"]
    assert (await c.get(f"/datasets/{ds['id']}", headers=api.alice)).json()["version"] == 0


async def test_experiments_from_any_door_compared_item_by_item(api: Api) -> None:
    c, h = api.client, api.alice
    ds = await _post(api, "/datasets", {"name": "qa"})
    change = await _post(
        api,
        f"/datasets/{ds['id']}/items",
        [{"input": {"q": n}, "expected_output": n} for n in range(3)],
    )
    items = [i["item_id"] for i in change["items"]]
    base = await _post(api, "/experiments", {"name": "v1", "dataset_id": ds["id"]})
    cand = await _post(api, "/experiments", {"name": "v2", "dataset_id": ds["id"]})
    assert base["dataset_version"] == 1

    async def record(experiment: str, item: str, result: Any, score: float, cost: str) -> str:
        meta = {"chad.experiment_id": experiment, "chad.dataset_item_id": item}
        run = await _post(
            api,
            "/runs",
            {
                "result": result,
                "status": "succeeded",
                "metadata": meta,
                "started_at": "2026-01-01T00:00:00Z",
                "completed_at": "2026-01-01T00:00:02Z",
            },
        )
        await _post(api, f"/runs/{run['id']}/llm-calls", {"model": "m", "cost_usd": cost})
        await _post(api, f"/runs/{run['id']}/scores", {"name": "correct", "value": score})
        return str(run["id"])

    for n, item in enumerate(items):
        await record(base["id"], item, f"old {n}", 0.0, "0.002")
    await record(cand["id"], items[0], "new 0", 1.0, "0.001")
    await record(cand["id"], items[1], "new 1", 1.0, "0.001")
    # The third candidate run arrives over OTLP, tagged by resource attributes.
    resource = [
        attr("service.name", "agent"),
        attr("chad.experiment_id", cand["id"]),
        attr("chad.dataset_item_id", items[2]),
    ]
    sent = await c.post(
        "/v1/traces",
        content=json.dumps(body(span("eee19b7ec3c1b174", "root"), resource=resource)).encode(),
        headers={**h, "Content-Type": "application/json"},
    )
    assert sent.status_code == 200, sent.text
    # Bob's run claiming Alice's experiment is not read.
    await _post(
        api,
        "/runs",
        {"metadata": {"chad.experiment_id": cand["id"], "chad.dataset_item_id": items[0]}},
        headers=api.bob,
    )

    resp = await c.get("/experiments/compare", params={"ids": [base["id"], cand["id"]]}, headers=h)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    old, new = report["experiments"]
    assert (old["runs"], new["runs"]) == (3, 3)
    assert old["scores"]["correct"]["mean"] == 0.0
    assert new["scores"]["correct"] == {"count": 2, "mean": 1.0, "labels": {}}
    assert old["cost_usd"] == "0.006"
    by_item = {i["item_id"]: i for i in report["items"]}
    assert list(by_item) == [i["item_id"] for i in await _items(api, ds["id"])]
    first = by_item[items[0]]
    assert [r["output"] for r in first["results"]] == ["old 0", "new 0"]
    assert first["deltas"][cand["id"]] == {"correct": 1.0, "cost_usd": -0.001, "duration_ms": 0.0}
    third = by_item[items[2]]
    assert third["results"][1]["run_id"] is not None
    assert third["deltas"][cand["id"]]["cost_usd"] == -0.002

    assert (
        await c.get("/experiments/compare", params={"ids": [cand["id"]]}, headers=api.bob)
    ).status_code == 403
    other = await _post(api, "/datasets", {"name": "other"})
    elsewhere = await _post(api, "/experiments", {"name": "v3", "dataset_id": other["id"]})
    mixed = await c.get(
        "/experiments/compare", params={"ids": [base["id"], elsewhere["id"]]}, headers=h
    )
    assert mixed.status_code == 422
    assert "same dataset" in mixed.text
    listed = await c.get("/experiments", params={"dataset_id": ds["id"]}, headers=h)
    assert {e["name"] for e in listed.json()["items"]} == {"v1", "v2"}
