"""/runs over HTTP: ownership, the write path, dashboards' reads, and every status code."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from apps.core_api.main import create_app
from chad_memory.settings import Settings
from tests.api.conftest import Api

RUN_BODY: dict[str, Any] = {
    "name": "research",
    "agent": "planner",
    "tags": ["demo", "nightly"],
    "request_payload": {"question": "what is 6 x 7?"},
    "metadata": {"team": "core"},
}


async def _create_run(api: Api, **overrides: Any) -> dict[str, Any]:
    response = await api.client.post("/runs", json={**RUN_BODY, **overrides}, headers=api.alice)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_run_lifecycle_with_children_and_stats(api: Api) -> None:
    run = await _create_run(api)
    assert run["actor"] == "alice"
    assert run["status"] == "pending"
    assert run["request_payload"] == {"question": "what is 6 x 7?"}
    rid = run["id"]
    c, h = api.client, api.alice

    running = await c.patch(f"/runs/{rid}", json={"status": "running"}, headers=h)
    assert running.status_code == 200
    assert running.json()["started_at"] is not None

    one = await c.post(f"/runs/{rid}/steps", json={"step_index": 1, "name": "answer"}, headers=h)
    assert one.status_code == 201
    assert [s["step_index"] for s in one.json()] == [1]
    many = await c.post(
        f"/runs/{rid}/steps",
        json=[
            {"step_index": 0, "name": "plan", "duration_ms": 120.5},
            {"step_index": 2, "name": "check", "parent_step_id": one.json()[0]["id"]},
        ],
        headers=h,
    )
    assert many.status_code == 201, many.text
    steps = (await c.get(f"/runs/{rid}/steps", headers=h)).json()
    assert [s["name"] for s in steps] == ["plan", "answer", "check"]

    for model, latency, cost in (("gpt-4o-mini", 100.0, "0.00036"), ("gpt-4o", 900.0, "0.0105")):
        call = await c.post(
            f"/runs/{rid}/llm-calls",
            json={
                "provider": "openai",
                "model": model,
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "cost_usd": cost,
                "latency_ms": latency,
                "step_id": steps[1]["id"],
            },
            headers=h,
        )
        assert call.status_code == 201, call.text
        assert call.json()["total_tokens"] == 1500
    calls = (await c.get(f"/runs/{rid}/llm-calls", headers=h)).json()
    assert [x["model"] for x in calls] == ["gpt-4o-mini", "gpt-4o"]
    assert calls[0]["cost_usd"] == "0.00036"

    artifact = await c.post(
        f"/runs/{rid}/artifacts",
        json={"name": "report.md", "content_type": "text/markdown", "size_bytes": 12},
        headers=h,
    )
    assert artifact.status_code == 201
    assert (await c.get(f"/runs/{rid}/artifacts", headers=h)).json()[0]["name"] == "report.md"

    done = await c.patch(
        f"/runs/{rid}", json={"status": "succeeded", "result": {"answer": 42}}, headers=h
    )
    assert done.status_code == 200
    assert done.json()["completed_at"] is not None
    back = await c.patch(f"/runs/{rid}", json={"status": "running"}, headers=h)
    assert back.status_code == 409
    assert "cannot move from succeeded" in back.json()["detail"]

    full = (await c.get(f"/runs/{rid}", headers=h)).json()
    assert full["result"] == {"answer": 42}
    assert [a["name"] for a in full["artifacts"]] == ["report.md"]
    # The detail's artifacts come from another statement than the list's: same JSON.
    assert full["artifacts"] == (await c.get(f"/runs/{rid}/artifacts", headers=h)).json()

    stats = (await c.get(f"/runs/{rid}/stats", headers=h)).json()
    assert stats["step_count"] == 3
    assert stats["llm_call_count"] == 2
    assert stats["total_tokens"] == 3000
    assert stats["cost_usd"] == "0.01086"
    assert Decimal(stats["cost_usd"]) == Decimal("0.01086")
    assert stats["latency_ms_mean"] == 500.0
    assert stats["latency_ms_p95"] == 860.0
    assert stats["duration_ms"] is not None
    assert [m["model"] for m in stats["by_model"]] == ["gpt-4o", "gpt-4o-mini"]

    listed = (await c.get("/runs", headers=h)).json()
    assert listed["total"] == 1
    assert listed["next_cursor"] is None
    summary = listed["items"][0]
    assert summary["id"] == rid
    assert summary["status"] == "succeeded"
    # Summaries carry no payloads.
    assert not {"request_payload", "result", "error"} & summary.keys()

    deleted = await c.delete(f"/runs/{rid}", headers=h)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await c.get(f"/runs/{rid}", headers=h)).status_code == 404
    assert (await c.get(f"/runs/{rid}/steps", headers=h)).status_code == 404
    assert await api.store.get_steps(uuid.UUID(rid)) == []
    assert await api.store.get_llm_calls(uuid.UUID(rid)) == []


async def test_another_actor_gets_403_everywhere(api: Api) -> None:
    run = await _create_run(api)
    rid = run["id"]
    c = api.client
    attempts = [
        c.get(f"/runs/{rid}", headers=api.bob),
        c.get(f"/runs/{rid}/steps", headers=api.bob),
        c.get(f"/runs/{rid}/artifacts", headers=api.bob),
        c.get(f"/runs/{rid}/llm-calls", headers=api.bob),
        c.get(f"/runs/{rid}/stats", headers=api.bob),
        c.patch(f"/runs/{rid}", json={"status": "failed"}, headers=api.bob),
        c.post(f"/runs/{rid}/steps", json={"step_index": 0}, headers=api.bob),
        c.post(f"/runs/{rid}/llm-calls", json={"model": "m"}, headers=api.bob),
        c.post(f"/runs/{rid}/artifacts", json={"name": "x"}, headers=api.bob),
        c.delete(f"/runs/{rid}", headers=api.bob),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403, (response.request.url, response.text)
        assert "another actor" in response.json()["detail"]
    # Nothing bob tried landed.
    assert (await api.store.get_run(uuid.UUID(rid))).status == "pending"
    assert await api.store.get_steps(uuid.UUID(rid)) == []

    # bob's own run, beside alice's: each lists only their own, whatever the filters say.
    bobs = await c.post("/runs", json={"name": "research"}, headers=api.bob)
    assert bobs.status_code == 201
    assert bobs.json()["actor"] == "bob"
    for who, expected in ((api.alice, rid), (api.bob, bobs.json()["id"])):
        listed = (await c.get("/runs", params={"name": "research"}, headers=who)).json()
        assert [r["id"] for r in listed["items"]] == [expected]
        assert listed["total"] == 1
    widened = await c.get("/runs", params={"actor": "alice"}, headers=api.bob)
    assert widened.status_code == 422

    unknown = uuid.uuid4()
    for method, path in (
        ("GET", f"/runs/{unknown}"),
        ("GET", f"/runs/{unknown}/stats"),
        ("PATCH", f"/runs/{unknown}"),
        ("DELETE", f"/runs/{unknown}"),
    ):
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        response = await c.request(method, path, headers=api.bob, **kwargs)
        assert response.status_code == 404, (method, path)
    assert (await c.get("/runs/not-a-uuid", headers=api.bob)).status_code == 422
    assert (await c.get("/runs/not-a-uuid/steps", headers=api.bob)).status_code == 422


async def test_auth_is_required_on_every_data_route(api: Api) -> None:
    run = await _create_run(api)
    routes = [
        ("GET", "/runs"),
        ("POST", "/runs"),
        ("GET", f"/runs/{run['id']}"),
        ("GET", f"/runs/{run['id']}/stats"),
        ("POST", "/memory/search"),
        ("DELETE", "/memory?source_id=x"),
    ]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer cm_unknown"}, {"X-Actor-ID": "alice"}):
            kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
            response = await api.client.request(method, path, headers=headers, **kwargs)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    assert (await api.client.get("/health")).status_code == 200


async def test_bad_bodies_get_4xx_with_detail(api: Api) -> None:
    c, h = api.client, api.alice
    run = await _create_run(api)
    rid = run["id"]
    bad_creates: list[Any] = [
        {"actor": "bob"},  # the owner comes from the key, never the body
        {"id": str(uuid.uuid4())},
        {"status": "exploded"},
        {"name": 42},
        {"tags": "not-a-list"},
        {"name": "nul\u0000byte"},
        {"metadata": {"k": "nul\u0000"}},
        {"metadata": ["not", "an", "object"]},
        {"started_at": "yesterday"},
        {"thread_id": "nope"},
        {"started_at": "0001-01-01T00:00:00+01:00"},  # before year 1 once in UTC
        {"completed_at": "9999-12-31T23:59:59-01:00"},
        [],
    ]
    for body in bad_creates:
        response = await c.post("/runs", json=body, headers=h)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    # NaN is not JSON, but Python's parser takes it: it must still be refused.
    for raw in (b'{"metadata": {"x": NaN}}', b'{"result": Infinity}', b'{"name": '):
        response = await c.post(
            "/runs", content=raw, headers={**h, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, (raw, response.text)
    nan_step = await c.post(
        f"/runs/{rid}/steps",
        content=b'{"step_index": 0, "duration_ms": NaN}',
        headers={**h, "Content-Type": "application/json"},
    )
    assert nan_step.status_code == 422
    assert (await api.store.count_runs()) == 1

    assert (
        await c.post(f"/runs/{rid}/steps", json={"step_index": 0}, headers=h)
    ).status_code == 201
    duplicate = await c.post(f"/runs/{rid}/steps", json={"step_index": 0}, headers=h)
    assert duplicate.status_code == 409
    too_many = await c.post(
        f"/runs/{rid}/steps", json=[{"step_index": i} for i in range(1001)], headers=h
    )
    assert too_many.status_code == 422
    assert (await c.post(f"/runs/{rid}/steps", json=[], headers=h)).status_code == 422
    negative = await c.post(
        f"/runs/{rid}/llm-calls", json={"prompt_tokens": -1, "cost_usd": "-1"}, headers=h
    )
    assert negative.status_code == 422
    overflow = await c.post(
        f"/runs/{rid}/llm-calls",
        json={"prompt_tokens": 2**31 - 1, "completion_tokens": 2**31 - 1},
        headers=h,
    )
    assert overflow.status_code == 422
    assert "exceeds" in str(overflow.json()["detail"])

    # Children may only point at steps of their own run (not another actor's).
    other = await c.post("/runs", json={}, headers=api.bob)
    bob_step = await c.post(
        f"/runs/{other.json()['id']}/steps", json={"step_index": 0}, headers=api.bob
    )
    foreign = bob_step.json()[0]["id"]
    for path, body in (
        (f"/runs/{rid}/steps", {"step_index": 5, "parent_step_id": foreign}),
        (f"/runs/{rid}/llm-calls", {"step_id": foreign}),
        (f"/runs/{rid}/artifacts", {"name": "a", "step_id": foreign}),
    ):
        response = await c.post(path, json=body, headers=h)
        assert response.status_code == 422, (path, response.text)
        assert foreign in response.json()["detail"]

    # A run may only join the caller's own threads.
    bobs_thread = (await c.post("/threads", json={"agent_type": "x"}, headers=api.bob)).json()
    joined = await c.post("/runs", json={"thread_id": bobs_thread["id"]}, headers=h)
    assert joined.status_code == 403
    moved = await c.patch(f"/runs/{rid}", json={"thread_id": bobs_thread["id"]}, headers=h)
    assert moved.status_code == 403
    nowhere = await c.post("/runs", json={"thread_id": str(uuid.uuid4())}, headers=h)
    assert nowhere.status_code == 404

    trace = await c.post("/runs", json={"trace_id": "t-1"}, headers=h)
    assert trace.status_code == 201
    assert (await c.post("/runs", json={"trace_id": "t-1"}, headers=h)).status_code == 409
    nulled = await c.patch(f"/runs/{rid}", json={"tags": None}, headers=h)
    assert nulled.status_code == 422


async def test_list_filters_and_limits(api: Api) -> None:
    c, h = api.client, api.alice
    thread = (await c.post("/threads", json={"agent_type": "chat"}, headers=h)).json()["id"]
    a = await _create_run(api, name="a", tags=["x"], thread_id=thread, trace_id="tr-a")
    b = await _create_run(api, name="b", tags=["y"], status="running")
    cc = await _create_run(api, name="c", tags=["x", "y"], status="failed")

    async def ids(**params: Any) -> list[str]:
        response = await c.get("/runs", params=params, headers=h)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert await ids() == [cc["id"], b["id"], a["id"]]
    assert await ids(status="running") == [b["id"]]
    assert await ids(name="a") == [a["id"]]
    assert await ids(tag="x") == [cc["id"], a["id"]]
    assert await ids(thread_id=thread) == [a["id"]]
    assert await ids(trace_id="tr-a") == [a["id"]]
    assert await ids(created_after=b["created_at"]) == [cc["id"], b["id"]]
    assert await ids(created_before=b["created_at"]) == [a["id"]]
    assert await ids(limit=1, offset=1) == [b["id"]]
    page = (await c.get("/runs", params={"limit": 2}, headers=h)).json()
    assert page["total"] == 3
    assert page["next_cursor"]

    for params in (
        {"limit": 0},
        {"limit": 201},
        {"offset": -1},
        {"status": "exploded"},
        {"thread_id": "nope"},
        {"created_after": "soon"},
        {"cursor": "garbage!"},
        {"cursor": page["next_cursor"], "offset": 1},
    ):
        response = await c.get("/runs", params=params, headers=h)
        assert response.status_code == 422, params
        assert response.json()["detail"]
    deep = await c.get("/runs", params={"offset": 10_001}, headers=h)
    assert deep.status_code == 422
    assert "cursor" in str(deep.json()["detail"])
    assert (await c.get("/runs", params={"offset": 10_000}, headers=h)).json()["items"] == []
    assert (await c.get("/runs", params={"limit": 200}, headers=h)).status_code == 200


async def test_openapi_documents_every_route(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        "/runs": {"get", "post"},
        "/runs/{run_id}": {"get", "patch", "delete"},
        "/runs/{run_id}/steps": {"get", "post"},
        "/runs/{run_id}/artifacts": {"get", "post"},
        "/runs/{run_id}/llm-calls": {"get", "post"},
        "/runs/{run_id}/stats": {"get"},
        "/memory": {"post", "delete"},
        "/memory/search": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= paths[path].keys(), path
        for method in methods:
            responses = paths[path][method]["responses"]
            ok = next(code for code in responses if code.startswith("2"))
            if ok != "204":
                assert "$ref" in str(responses[ok]["content"]["application/json"]["schema"])
            assert "401" in responses
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/runs"]["get"]["security"] == [{"HTTPBearer": []}]
    create_schema = spec["components"]["schemas"]["RunCreateBody"]["properties"]
    assert "actor" not in create_schema
    assert "id" not in create_schema


async def test_trusted_header_mode_takes_the_actor_from_the_proxy(engine: AsyncEngine) -> None:
    app = create_app(engine=engine, settings=Settings(auth_mode="trusted_header"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        created = await c.post("/runs", json={"name": "proxied"}, headers={"X-Actor-ID": "carol"})
        assert created.status_code == 201
        assert created.json()["actor"] == "carol"
        rid = created.json()["id"]
        assert (await c.get(f"/runs/{rid}", headers={"X-Actor-ID": "carol"})).status_code == 200
        assert (await c.get(f"/runs/{rid}", headers={"X-Actor-ID": "dave"})).status_code == 403
        assert (await c.get("/runs")).status_code == 401


async def test_json_scalars_round_trip_on_the_driver_path(api: Api) -> None:
    """A JSON string, number or null in a jsonb column comes back as sent (a stored
    string was once decoded twice on the compiled-statement path)."""
    for value in ("tokens", 3, 2.5, True, None, ["a", 1]):
        created = await api.client.post(
            "/runs",
            json={"name": "j", "result": value, "request_payload": value},
            headers=api.alice,
        )
        assert created.status_code == 201, created.text
        assert created.json()["result"] == value
        got = await api.client.get(f"/runs/{created.json()['id']}", headers=api.alice)
        assert got.json()["request_payload"] == value
