"""GET /analytics/usage: the caller's usage only, exact costs as plain decimals."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


async def test_usage_api(api: Api) -> None:
    c, h = api.client, api.alice
    run = (await c.post("/runs", json={"name": "job"}, headers=h)).json()
    for model, cost in (("gpt-4o", "0.000000001"), ("gpt-4o", "0.25"), ("other", None)):
        body: dict[str, Any] = {"model": model, "prompt_tokens": 10, "latency_ms": 100}
        if cost is not None:
            body["cost_usd"] = cost
        added = await c.post(f"/runs/{run['id']}/llm-calls", json=body, headers=h)
        assert added.status_code == 201
    got = await c.get("/analytics/usage", params={"group_by": "model"}, headers=h)
    assert got.status_code == 200, got.text
    rows = {r["group"]["model"]: r for r in got.json()["rows"]}
    assert rows["gpt-4o"]["cost_usd"] == "0.250000001"
    assert rows["gpt-4o"]["calls"] == 2
    assert rows["gpt-4o"]["runs"] == 1
    assert rows["gpt-4o"]["latency_ms_p50"] == 100
    assert rows["other"]["cost_usd"] == "0"
    assert rows["other"]["costed_calls"] == 0
    assert set(got.json()) == {"group_by", "from", "to", "rows", "scores"}
    assert got.json()["scores"] == []

    bob = await c.get("/analytics/usage", headers=api.bob)
    assert bob.json()["rows"] == []
    both = await c.get("/analytics/usage", params={"group_by": "model,day"}, headers=h)
    assert both.json()["group_by"] == ["model", "day"]
    assert {tuple(r["group"]) for r in both.json()["rows"]} == {("model", "day")}
    twice: list[tuple[str, str | int | float | bool | None]] = [
        ("group_by", "model"),
        ("group_by", "day"),
    ]
    repeated = await c.get("/analytics/usage", params=twice, headers=h)
    assert repeated.json()["rows"] == both.json()["rows"]
    for params in (
        {"group_by": "week"},
        {"group_by": "model,model"},
        {"from": "2026-01-02", "to": "2026-01-01"},
        {"x": "1"},
    ):
        bad = await c.get("/analytics/usage", params=params, headers=h)
        assert bad.status_code == 422, params
