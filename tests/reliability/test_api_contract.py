"""The input contract and the authorization matrix, over HTTP.

Bad input gets a defined 4xx (never a 500) and writes nothing; a second actor gets 403 on
every route that names a run and changes nothing; responses carry only documented fields.
Routes are read from the app's own OpenAPI document, so a new route is covered (or makes
these tests fail until it is) without anyone remembering to add it here.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chad_memory.settings import get_settings
from tests.reliability.conftest import EngineMaker, Served, serve

DIM = get_settings().embedding_dim
X = "\x01MARK\x01"  # replaced by the hostile value under test
TABLES = (
    "runs",
    "steps",
    "artifacts",
    "llm_calls",
    "embeddings",
    "threads",
    "messages",
    "model_prices",
)


def vector(seed: int = 1) -> list[float]:
    values = [math.sin(seed * (i + 1)) for i in range(DIM)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


@dataclass
class World:
    api: Served
    run_id: str
    step_id: str
    thread_id: str
    message_id: str
    price_id: str
    watcher: AsyncConnection
    memory_id: str
    score_id: str = ""
    dataset_id: str = ""
    item_id: str = ""
    experiment_id: str = ""


@pytest.fixture
async def world(make_engine: EngineMaker, watcher: AsyncConnection) -> AsyncIterator[World]:
    """alice owns a run with a step, an artifact, an LLM call and a memory item."""
    engine, _ = make_engine()
    async with serve(engine, max_body_bytes=64 * 1024) as api:
        c, h = api.client, api.alice
        run = await c.post("/runs", json={"name": "r", "trace_id": "alice-trace"}, headers=h)
        assert run.status_code == 201
        run_id = run.json()["id"]
        step = await c.post(f"/runs/{run_id}/steps", json={"step_index": 0}, headers=h)
        art = await c.post(f"/runs/{run_id}/artifacts", json={"name": "a"}, headers=h)
        call = await c.post(
            f"/runs/{run_id}/llm-calls", json={"provider": "p", "prompt_tokens": 3}, headers=h
        )
        mem = await c.post(
            "/memory",
            json={"items": [{"embedding": vector(), "source_id": "alice-src", "run_id": run_id}]},
            headers=h,
        )
        thread = await c.post("/threads", json={"agent_type": "chat", "title": "t"}, headers=h)
        assert thread.status_code == 201
        thread_id = thread.json()["id"]
        message = await c.post(
            f"/threads/{thread_id}/messages", json={"role": "user", "content": "hi"}, headers=h
        )
        linked = await c.patch(f"/runs/{run_id}", json={"thread_id": thread_id}, headers=h)
        price = await c.put(
            "/prices",
            json={
                "model_pattern": "m",
                "starts_at": "2026-01-01T00:00:00Z",
                "input_mtok": "1",
                "output_mtok": "2",
            },
            headers=h,
        )
        assert [r.status_code for r in (step, art, call, mem, message, linked, price)] == [
            201,
            201,
            201,
            201,
            201,
            200,
            200,
        ]
        config = {"name": "cfg-1", "data_type": "boolean"}
        assert (await c.post("/score-configs", json=config, headers=h)).status_code == 201
        score = await c.post(f"/runs/{run_id}/scores", json={"name": "q", "value": 1}, headers=h)
        assert score.status_code == 201
        dataset = await c.post("/datasets", json={"name": "d"}, headers=h)
        dataset_id = dataset.json()["id"]
        item = await c.post(f"/datasets/{dataset_id}/items", json=[{"input": 1}], headers=h)
        experiment = {"name": "e", "dataset_id": dataset_id}
        made = await c.post("/experiments", json=experiment, headers=h)
        assert [r.status_code for r in (dataset, item, made)] == [201, 201, 201]
        yield World(
            api,
            run_id,
            step.json()[0]["id"],
            thread_id,
            message.json()["id"],
            price.json()["id"],
            watcher,
            mem.json()["items"][0]["id"],
            score_id=score.json()["id"],
            dataset_id=dataset_id,
            item_id=item.json()["items"][0]["item_id"],
            experiment_id=made.json()["id"],
        )


async def snapshot(conn: AsyncConnection) -> dict[str, list[str]]:
    """Every row of every data table, as text: equal snapshots mean nothing changed."""
    out = {}
    for table in TABLES:
        rows = await conn.execute(text(f"SELECT t::text FROM {table} t ORDER BY 1"))
        out[table] = [r[0] for r in rows]
    return out


def inject(template: Any, value: Any) -> Any:
    """The template with every X (in keys, values, strings) replaced by `value`."""
    if isinstance(template, dict):
        return {inject(k, value): inject(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [inject(v, value) for v in template]
    if template == X:
        return value
    return template


def text_cases(run: str, thread: str) -> Iterator[tuple[str, str, Any]]:
    """(method, path, body with X) for every text field and nested JSON in the API."""
    steps, arts, calls = f"/runs/{run}/steps", f"/runs/{run}/artifacts", f"/runs/{run}/llm-calls"
    v = vector(2)
    for body in (
        {"name": X},
        {"agent": X},
        {"trace_id": X},
        {"error": X},
        {"tags": [X]},
        {"metadata": {X: 1}},
        {"metadata": {"k": X}},
        {"request_payload": {"a": [X]}},
        {"result": {X: {"b": 1}}},
    ):
        yield "POST", "/runs", body
    for body in (
        {"name": X},
        {"error": X},
        {"result": [X]},
        {"metadata": {"k": X}},
        {"tags": [X]},
    ):
        yield "PATCH", f"/runs/{run}", body
    for body in (
        {"name": X},
        {"type": X},
        {"input": {"k": X}},
        {"output": X},
        {"error": X},
        {"metadata": {X: 1}},
    ):
        yield "POST", steps, {"step_index": 7, **body}
    for body in ({"name": X}, {"url": X}, {"content_type": X}, {"metadata": {"k": X}}):
        yield "POST", arts, {"name": "a", **body}
    for body in (
        {"provider": X},
        {"model": X},
        {"request": {"m": X}},
        {"response": X},
        {"error": X},
    ):
        yield "POST", calls, body
    for item in (
        {"content": X},
        {"namespace": X},
        {"source_id": X},
        {"source_type": X},
        {"metadata": {X: "v"}},
    ):
        yield "POST", "/memory", {"items": [{"embedding": v, **item}]}
    for body in ({"namespace": X}, {"source_id": X}, {"metadata": {"k": X}}):
        yield "POST", "/memory/search", {"embedding": v, **body}
    for body in ({"agent_type": X}, {"title": X}, {"model": X}, {"metadata": {X: 1}}):
        yield "POST", "/threads", {"agent_type": "chat", **body}
    yield "PATCH", f"/threads/{thread}", {"title": X}
    messages: list[dict[str, Any]] = [
        {"content": X},
        {"tool_calls": [{"name": X}]},
        {"artifact_data": {"k": [X]}},
        {"metadata": {X: "v"}},
    ]
    for message in messages:
        yield "POST", f"/threads/{thread}/messages", {"role": "user", **message}
    agentkit = {"agent_type": "chat", "model": "m", "provider": "p"}
    for body in ({"agent_type": X}, {"model": X}, {"provider": X}, {"title": X}):
        yield "POST", "/api/threads", {**agentkit, **body}
    yield "PATCH", f"/api/threads/{thread}", {"title": X}
    for message in ({"content": X}, {"artifact_data": {"k": [X]}}, {"metadata": {X: "v"}}):
        yield "POST", f"/api/threads/{thread}/messages", {"role": "user", **message}


async def _send(api: Served, method: str, path: str, body: Any) -> Any:
    """JSON with non-ASCII escaped, so a lone surrogate travels as the text `\\ud800`."""
    headers = {**api.alice, "Content-Type": "application/json"}
    return await api.client.request(method, path, content=json.dumps(body), headers=headers)


@pytest.mark.parametrize("hostile", ["nul\x00byte", "lone\ud800surrogate", "\udfff"])
async def test_unstorable_text_anywhere_is_422_and_writes_nothing(
    world: World, hostile: str
) -> None:
    before = await snapshot(world.watcher)
    wrong = []
    for method, path, template in text_cases(world.run_id, world.thread_id):
        answer = await _send(world.api, method, path, inject(template, hostile))
        if answer.status_code != 422:
            wrong.append(f"{method} {path} {template}: {answer.status_code} {answer.text[:200]}")
    if "\x00" in hostile:  # a lone surrogate cannot even be written into a URL
        for query in ("name", "tag", "trace_id", "cursor"):
            answer = await world.api.client.get(
                "/runs", params={query: hostile}, headers=world.api.alice
            )
            if answer.status_code != 422:
                wrong.append(f"GET /runs?{query}: {answer.status_code}")
        answer = await world.api.client.delete(
            "/memory", params={"source_id": hostile}, headers=world.api.alice
        )
        if answer.status_code != 422:
            wrong.append(f"DELETE /memory?source_id: {answer.status_code}")
    assert not wrong, "\n".join(wrong)
    assert await snapshot(world.watcher) == before


NON_FINITE = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("token", NON_FINITE)
async def test_non_finite_numbers_are_422(world: World, token: str) -> None:
    """Python's json module parses NaN/Infinity; they must never reach the database."""
    run = world.run_id
    raw = [
        ("POST", f"/runs/{run}/llm-calls", f'{{"cost_usd": {token}}}'),
        ("POST", f"/runs/{run}/llm-calls", f'{{"latency_ms": {token}}}'),
        ("POST", f"/runs/{run}/llm-calls", f'{{"prompt_tokens": {token}}}'),
        ("POST", f"/runs/{run}/steps", f'{{"step_index": 3, "duration_ms": {token}}}'),
        ("POST", f"/runs/{run}/steps", f'{{"step_index": {token}}}'),
        ("POST", "/runs", f'{{"metadata": {{"x": {token}}}}}'),
        ("POST", "/runs", f'{{"result": [{token}]}}'),
        ("PATCH", f"/runs/{run}", f'{{"result": {{"a": {token}}}}}'),
        (
            "POST",
            "/memory",
            json.dumps({"items": [{"embedding": vector()}]})
            .replace("[", f"[{token}, ", 2)
            .replace(f"[{token}, {{", "[{", 1),
        ),
        ("POST", "/memory/search", f'{{"embedding": [{token}{", 0.1" * (DIM - 1)}]}}'),
        (
            "POST",
            "/memory/search",
            json.dumps({"embedding": vector()})[:-1] + f', "min_score": {token}}}',
        ),
    ]
    before = await snapshot(world.watcher)
    wrong = []
    for method, path, body in raw:
        answer = await world.api.client.request(
            method,
            path,
            content=body,
            headers={**world.api.alice, "Content-Type": "application/json"},
        )
        if answer.status_code != 422:
            wrong.append(f"{method} {path} {body[:80]}: {answer.status_code} {answer.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await snapshot(world.watcher) == before


async def test_negative_counts_bounds_and_malformed_ids_are_422(world: World) -> None:
    run = world.run_id
    v = vector()
    cases: list[tuple[str, str, Any]] = [
        ("POST", f"/runs/{run}/llm-calls", {"prompt_tokens": -1}),
        ("POST", f"/runs/{run}/llm-calls", {"completion_tokens": -1}),
        ("POST", f"/runs/{run}/llm-calls", {"total_tokens": -1}),
        ("POST", f"/runs/{run}/llm-calls", {"latency_ms": -1}),
        ("POST", f"/runs/{run}/llm-calls", {"cost_usd": "-0.01"}),
        ("POST", f"/runs/{run}/llm-calls", {"cost_usd": -0.01}),
        ("POST", f"/runs/{run}/llm-calls", {"prompt_tokens": 2**40}),
        ("POST", f"/runs/{run}/steps", {"step_index": -1}),
        ("POST", f"/runs/{run}/steps", {"step_index": 4, "duration_ms": -5}),
        ("POST", f"/runs/{run}/steps", [{"step_index": 100 + i} for i in range(1001)]),
        ("POST", f"/runs/{run}/steps", []),
        ("POST", f"/runs/{run}/artifacts", {"name": "a", "size_bytes": -1}),
        ("POST", "/memory", {"items": [{"embedding": [1.0]}] * 1001}),  # batch cap first
        ("POST", "/memory", {"items": [{"embedding": v[:-1]}]}),
        ("POST", "/memory", {"items": []}),
        ("POST", "/memory/search", {"embedding": [0.0] * DIM}),
        ("POST", "/memory/search", {"embedding": v, "k": 0}),
        ("POST", "/memory/search", {"embedding": v, "k": 10_000}),
        ("POST", "/memory/search", {"embedding": v[:10]}),
        # Ids that are not UUIDs, in bodies.
        ("POST", "/runs", {"thread_id": "not-a-uuid"}),
        ("POST", f"/runs/{run}/steps", {"step_index": 5, "parent_step_id": "x"}),
        ("POST", f"/runs/{run}/artifacts", {"name": "a", "step_id": "1234"}),
        ("POST", "/memory", {"items": [{"embedding": v, "run_id": "nope"}]}),
        # Server-owned fields: the owner, the id, timestamps the server stamps.
        ("POST", "/runs", {"actor": "bob"}),
        ("POST", "/runs", {"id": "5f0b6f44-3a33-4a4f-9d0e-8f3e7c1f1a11"}),
        ("POST", "/runs", {"created_at": "2020-01-01T00:00:00Z"}),
        ("POST", "/runs", {"updated_at": "2020-01-01T00:00:00Z"}),
        ("POST", "/runs", {"idempotency_key": "sneaky"}),
        ("PATCH", f"/runs/{run}", {"actor": "bob"}),
        ("PATCH", f"/runs/{run}", {"id": "5f0b6f44-3a33-4a4f-9d0e-8f3e7c1f1a11"}),
        ("PATCH", f"/runs/{run}", {"created_at": "2020-01-01T00:00:00Z"}),
        ("POST", f"/runs/{run}/steps", {"step_index": 6, "run_id": run}),
        ("POST", f"/runs/{run}/steps", {"step_index": 6, "id": world.step_id}),
        ("POST", "/memory", {"items": [{"embedding": v, "actor": "bob"}]}),
    ]
    before = await snapshot(world.watcher)
    wrong = []
    for method, path, body in cases:
        answer = await _send(world.api, method, path, body)
        if answer.status_code != 422:
            wrong.append(f"{method} {path} {str(body)[:80]}: {answer.status_code}")
    for params in (
        {"limit": 0},
        {"limit": 201},
        {"offset": -1},
        {"thread_id": "x"},
        {"limit": "NaN"},
    ):
        answer = await world.api.client.get("/runs", params=params, headers=world.api.alice)
        if answer.status_code != 422:
            wrong.append(f"GET /runs {params}: {answer.status_code}")
    for path in ("/runs/not-a-uuid", "/runs/1", "/runs/not-a-uuid/steps", "/runs/x/stats"):
        answer = await world.api.client.get(path, headers=world.api.alice)
        if answer.status_code != 422:
            wrong.append(f"GET {path}: {answer.status_code}")
    assert not wrong, "\n".join(wrong)
    assert await snapshot(world.watcher) == before


async def test_patch_with_null_for_a_non_nullable_field_is_a_documented_422(
    world: World,
) -> None:
    """Found by the fuzzer: OpenAPI allowed `"tags": null`, the database refused it."""
    spec = world.api.app.openapi()
    props = spec["components"]["schemas"]["RunUpdate"]["properties"]
    for field in ("status", "tags", "metadata"):
        assert "null" not in json.dumps(props[field]), props[field]
        answer = await world.api.client.patch(
            f"/runs/{world.run_id}", json={field: None}, headers=world.api.alice
        )
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", field]
    run = (await world.api.client.get(f"/runs/{world.run_id}", headers=world.api.alice)).json()
    assert (run["status"], run["tags"], run["metadata"]) == ("pending", [], {})


async def test_wrong_content_type_is_415_and_oversized_body_413_before_parsing(
    world: World,
) -> None:
    c, h = world.api.client, world.api.alice
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = await c.post("/runs", content=b"{}", headers={**h, "Content-Type": content_type})
        assert answer.status_code == 415, content_type
    answer = await c.post("/runs", content=b'{"name": "x"}', headers=h)  # no Content-Type
    assert answer.status_code == 415
    # Over the limit (64 KiB here) and not even JSON: refused by size, so never parsed.
    big = b"\x00not json" * 10_000
    answer = await c.post("/runs", content=big, headers={**h, "Content-Type": "application/json"})
    assert answer.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    # Chunked (no Content-Length): refused once it passes the limit.
    answer = await c.post(
        "/runs", content=chunks(), headers={**h, "Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert (await c.get("/runs", headers=h)).json()["total"] == 1


def _documented(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def undocumented_fields(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$"
) -> list[str]:
    """Object keys in `value` that `schema` does not declare, anywhere in the tree."""
    schema = _documented(schema, spec)
    if "anyOf" in schema:
        found = [undocumented_fields(value, s, spec, where) for s in schema["anyOf"]]
        return min(found, key=len)
    if isinstance(value, list) and "items" in schema:
        return [
            p
            for i, v in enumerate(value)
            for p in undocumented_fields(v, schema["items"], spec, f"{where}[{i}]")
        ]
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        out = [f"{where}.{k}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                out += undocumented_fields(v, props[k], spec, f"{where}.{k}")
        return out
    return []


async def test_responses_carry_only_documented_fields(world: World) -> None:
    c, h, run = world.api.client, world.api.alice, world.run_id
    spec = world.api.app.openapi()
    reads = [
        ("/runs", "get", await c.get("/runs", headers=h)),
        ("/runs/{run_id}", "get", await c.get(f"/runs/{run}", headers=h)),
        ("/runs/{run_id}/steps", "get", await c.get(f"/runs/{run}/steps", headers=h)),
        ("/runs/{run_id}/artifacts", "get", await c.get(f"/runs/{run}/artifacts", headers=h)),
        ("/runs/{run_id}/llm-calls", "get", await c.get(f"/runs/{run}/llm-calls", headers=h)),
        ("/runs/{run_id}/stats", "get", await c.get(f"/runs/{run}/stats", headers=h)),
        (
            "/memory/search",
            "post",
            await c.post("/memory/search", json={"embedding": vector()}, headers=h),
        ),
        ("/runs", "post", await c.post("/runs", json={}, headers={**h, "Idempotency-Key": "d"})),
        ("/api/threads", "get", await c.get("/api/threads", headers=h)),
        (
            "/api/threads/{thread_id}",
            "get",
            await c.get(f"/api/threads/{world.thread_id}", headers=h),
        ),
        (
            "/api/threads/{thread_id}/messages",
            "get",
            await c.get(f"/api/threads/{world.thread_id}/messages", headers=h),
        ),
    ]
    problems = []
    for path, method, answer in reads:
        assert answer.status_code in (200, 201), (path, answer.text)
        responses = spec["paths"][path][method]["responses"]
        schema = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
        problems += [f"{path}: {p}" for p in undocumented_fields(answer.json(), schema, spec)]
        assert "idempotency_fingerprint" not in answer.text
    assert not problems, problems


# Bodies bob sends to each route that names a run; a route missing here fails the test.
BOB_BODIES: dict[tuple[str, str], Any] = {
    ("get", "/runs/{run_id}"): None,
    ("patch", "/runs/{run_id}"): {"name": "pwned", "status": "failed"},
    ("delete", "/runs/{run_id}"): None,
    ("get", "/runs/{run_id}/steps"): None,
    ("post", "/runs/{run_id}/steps"): {"step_index": 99, "name": "pwned"},
    ("get", "/runs/{run_id}/artifacts"): None,
    ("post", "/runs/{run_id}/artifacts"): {"name": "pwned"},
    ("get", "/runs/{run_id}/llm-calls"): None,
    ("post", "/runs/{run_id}/llm-calls"): {"provider": "pwned"},
    ("get", "/runs/{run_id}/stats"): None,
    ("get", "/runs/{run_id}/memory"): None,
    ("get", "/memory/{embedding_id}"): None,
    ("get", "/threads/{thread_id}"): None,
    ("patch", "/threads/{thread_id}"): {"title": "pwned"},
    ("delete", "/threads/{thread_id}"): None,
    ("get", "/threads/{thread_id}/messages"): None,
    ("post", "/threads/{thread_id}/messages"): {"role": "user", "content": "pwned"},
    ("get", "/threads/{thread_id}/runs"): None,
    ("delete", "/messages/{message_id}"): None,
    ("delete", "/prices/{price_id}"): None,
    ("get", "/runs/{run_id}/scores"): None,
    ("post", "/runs/{run_id}/scores"): {"name": "pwned", "value": 0},
    ("get", "/scores/{score_id}"): None,
    ("delete", "/scores/{score_id}"): None,
    ("get", "/datasets/{dataset_id}"): None,
    ("delete", "/datasets/{dataset_id}"): None,
    ("get", "/datasets/{dataset_id}/items"): None,
    ("post", "/datasets/{dataset_id}/items"): [{"input": "pwned"}],
    ("post", "/datasets/{dataset_id}/items/jsonl"): None,
    ("post", "/datasets/{dataset_id}/items/from-run"): {
        "run_id": "00000000-0000-0000-0000-000000000001"
    },
    ("put", "/datasets/{dataset_id}/items/{item_id}"): {"input": "pwned"},
    ("delete", "/datasets/{dataset_id}/items/{item_id}"): None,
    ("get", "/experiments/{experiment_id}"): None,
    ("delete", "/experiments/{experiment_id}"): None,
}
# AgentKit's protocol (/api) has no 403: another actor's row answers its plain 404.
BOB_BODIES_404: dict[tuple[str, str], Any] = {
    ("get", "/api/threads/{thread_id}"): None,
    ("patch", "/api/threads/{thread_id}"): {"title": "pwned"},
    ("delete", "/api/threads/{thread_id}"): None,
    ("get", "/api/threads/{thread_id}/messages"): None,
    ("post", "/api/threads/{thread_id}/messages"): {"role": "user", "content": "pwned"},
    ("delete", "/api/messages/{message_id}"): None,
    # Score configs are named per actor: bob has no config of that name.
    ("get", "/score-configs/{name}"): None,
    ("delete", "/score-configs/{name}"): None,
}


async def test_second_actor_gets_403_on_every_route_with_an_id_and_changes_nothing(
    world: World,
) -> None:
    c, bob, run = world.api.client, world.api.bob, world.run_id
    spec = world.api.app.openapi()
    routes = {
        (method, path) for path, ops in spec["paths"].items() if "{" in path for method in ops
    }
    expected = set(BOB_BODIES) | set(BOB_BODIES_404)
    assert routes == expected, f"routes with ids changed: {routes ^ expected}"
    before = await snapshot(world.watcher)
    wrong = []
    for (method, path), body in {**BOB_BODIES, **BOB_BODIES_404}.items():
        url = (
            path.replace("{run_id}", run)
            .replace("{thread_id}", world.thread_id)
            .replace("{message_id}", world.message_id)
            .replace("{price_id}", world.price_id)
            .replace("{embedding_id}", world.memory_id)
            .replace("{score_id}", world.score_id)
            .replace("{dataset_id}", world.dataset_id)
            .replace("{item_id}", world.item_id)
            .replace("{experiment_id}", world.experiment_id)
            .replace("{name}", "cfg-1")
        )
        # Bob also tries to pass himself off as alice through headers that must not count.
        headers = {**bob, "X-Actor-ID": "alice"}
        answer = await c.request(method.upper(), url, json=body, headers=headers)
        if answer.status_code != (404 if (method, path) in BOB_BODIES_404 else 403):
            wrong.append(f"{method.upper()} {path}: {answer.status_code}")
        elif "alice" in answer.text or "pwned" in answer.text:
            wrong.append(f"{method.upper()} {path} leaks: {answer.text}")

    # Bob cannot link his own run to alice's thread, nor list her threads.
    joined = await c.post("/runs", json={"thread_id": world.thread_id}, headers=bob)
    if joined.status_code != 403:
        wrong.append(f"POST /runs into alice's thread: {joined.status_code}")
    listed = await c.get("/threads", headers=bob)
    if listed.status_code != 200 or listed.json()["total"] != 0:
        wrong.append(f"GET /threads as bob: {listed.text[:200]}")
    listed = await c.get("/api/threads", headers=bob)
    if listed.json() != {"threads": []}:
        wrong.append(f"GET /api/threads as bob: {listed.text[:200]}")

    # Memory: bob cannot attach to alice's run, see her items, or delete her source.
    attach = await c.post(
        "/memory", json={"items": [{"embedding": vector(), "run_id": run}]}, headers=bob
    )
    if attach.status_code != 403:
        wrong.append(f"POST /memory with alice's run_id: {attach.status_code}")
    found = await c.post("/memory/search", json={"embedding": vector(), "k": 100}, headers=bob)
    if found.status_code != 200 or found.json()["items"]:
        wrong.append(f"POST /memory/search as bob: {found.status_code} {found.text[:200]}")
    gone = await c.delete("/memory", params={"source_id": "alice-src"}, headers=bob)
    if gone.status_code != 200 or gone.json()["deleted"] != 0:
        wrong.append(f"DELETE /memory?source_id=alice-src as bob: {gone.text}")

    # Query parameters narrow bob's own runs; none names or widens to another actor.
    for params in ({"actor": "alice"}, {"actor": "*"}, {"owner": "alice"}):
        answer = await c.get("/runs", params=params, headers=bob)
        if answer.status_code != 422:
            wrong.append(f"GET /runs {params}: {answer.status_code}")
    for params in ({"trace_id": "alice-trace"}, {"name": "r"}, {}):
        answer = await c.get("/runs", params=params, headers={**bob, "X-Actor-ID": "alice"})
        if answer.status_code != 200 or answer.json()["total"] != 0:
            wrong.append(f"GET /runs {params} as bob: {answer.text[:200]}")

    assert not wrong, "\n".join(wrong)
    assert await snapshot(world.watcher) == before


async def test_actor_filter_applies_before_limit(world: World) -> None:
    """bob's newer runs must not push alice's out of her first page (filter in SQL)."""
    c = world.api.client
    for i in range(8):
        assert (await c.post("/runs", json={"name": f"b{i}"}, headers=world.api.bob)).is_success
    page = await c.get("/runs", params={"limit": 1}, headers=world.api.alice)
    assert page.status_code == 200
    assert [r["id"] for r in page.json()["items"]] == [world.run_id]
    assert page.json()["total"] == 1
