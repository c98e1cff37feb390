"""Which run wrote a memory and which runs read it, both ways, over HTTP."""

from __future__ import annotations

import uuid

from chad_memory.settings import get_settings
from tests.api.conftest import Api

DIM = get_settings().embedding_dim


def unit(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


async def run_with_step(api: Api, headers: dict[str, str]) -> tuple[str, str]:
    run = (await api.client.post("/runs", json={"name": "agent"}, headers=headers)).json()
    steps = await api.client.post(
        f"/runs/{run['id']}/steps", json=[{"step_index": 0, "name": "remember"}], headers=headers
    )
    assert steps.status_code == 201, steps.text
    return run["id"], steps.json()[0]["id"]


async def test_written_and_read_both_ways(words_api: Api) -> None:
    c, alice = words_api.client, words_api.alice
    writer, write_step = await run_with_step(words_api, alice)
    reader, read_step = await run_with_step(words_api, alice)
    added = await c.post(
        "/memory",
        json={
            "items": [
                {"content": "user prefers green tea", "run_id": writer, "step_id": write_step},
                {"content": "user lives in Lisbon", "run_id": writer},
            ]
        },
        headers=alice,
    )
    assert added.status_code == 201, added.text
    tea, lisbon = added.json()["items"]
    assert tea["step_id"] == write_step
    assert lisbon["step_id"] is None

    for _ in range(2):
        found = await c.post(
            "/memory/search",
            json={"query": "green tea", "k": 1, "run_id": reader, "step_id": read_step},
            headers=alice,
        )
        assert found.status_code == 200, found.text
        assert [h["id"] for h in found.json()["items"]] == [tea["id"]]

    wrote = (await c.get(f"/runs/{writer}/memory", headers=alice)).json()
    assert {m["id"] for m in wrote["written"]} == {tea["id"], lisbon["id"]}
    assert wrote["read"] == []
    read = (await c.get(f"/runs/{reader}/memory", headers=alice)).json()
    assert read["written"] == []
    assert [(m["id"], m["reads"]) for m in read["read"]] == [(tea["id"], 2)]
    assert read["read"][0]["score"] > 0

    detail = await c.get(f"/memory/{tea['id']}", headers=alice)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["memory"]["run_id"] == writer
    assert body["memory"]["step_id"] == write_step
    assert [(r["run_id"], r["step_id"], r["reads"]) for r in body["read_by"]] == [
        (reader, read_step, 2)
    ]
    # A search without run_id records nothing.
    await c.post("/memory/search", json={"query": "Lisbon", "k": 1}, headers=alice)
    lisbon_detail = (await c.get(f"/memory/{lisbon['id']}", headers=alice)).json()
    assert lisbon_detail["read_by"] == []


async def test_provenance_keeps_to_the_callers_runs_and_steps(words_api: Api) -> None:
    c, alice, bob = words_api.client, words_api.alice, words_api.bob
    alices, alices_step = await run_with_step(words_api, alice)
    bobs, bobs_step = await run_with_step(words_api, bob)
    memory = (
        await c.post("/memory", json={"items": [{"content": "secret plan"}]}, headers=alice)
    ).json()["items"][0]

    # Bob cannot make his search count as alice's run's read, nor read her run's memory.
    as_alices = await c.post(
        "/memory/search", json={"query": "plan", "run_id": alices}, headers=bob
    )
    assert as_alices.status_code == 403
    assert (await c.get(f"/runs/{alices}/memory", headers=bob)).status_code == 403
    assert (await c.get(f"/memory/{memory['id']}", headers=bob)).status_code == 403
    assert (await c.get(f"/memory/{uuid.uuid4()}", headers=alice)).status_code == 404
    assert (await c.get(f"/runs/{uuid.uuid4()}/memory", headers=alice)).status_code == 404

    # A step must be a step of the item's (or the search's) run.
    wrong_step = await c.post(
        "/memory",
        json={"items": [{"content": "x", "run_id": alices, "step_id": bobs_step}]},
        headers=alice,
    )
    assert wrong_step.status_code == 422
    no_run = await c.post(
        "/memory", json={"items": [{"content": "x", "step_id": alices_step}]}, headers=alice
    )
    assert no_run.status_code == 422
    search_no_run = await c.post(
        "/memory/search", json={"query": "x", "step_id": alices_step}, headers=alice
    )
    assert search_no_run.status_code == 422
    detail = (await c.get(f"/memory/{memory['id']}", headers=alice)).json()
    assert detail["read_by"] == []
    assert bobs  # bob's run exists and was never touched by alice's calls


async def test_deleting_a_run_keeps_its_memories_unlinked(words_api: Api) -> None:
    c, alice = words_api.client, words_api.alice
    run, step = await run_with_step(words_api, alice)
    added = await c.post(
        "/memory",
        json={"items": [{"content": "kept", "run_id": run, "step_id": step}]},
        headers=alice,
    )
    memory = added.json()["items"][0]
    await c.post("/memory/search", json={"query": "kept", "run_id": run}, headers=alice)
    assert (await c.delete(f"/runs/{run}", headers=alice)).status_code == 204
    detail = (await c.get(f"/memory/{memory['id']}", headers=alice)).json()
    assert detail["memory"]["run_id"] is None
    assert detail["memory"]["step_id"] is None
    assert detail["read_by"] == []
