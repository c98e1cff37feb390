"""Scores and score configs over HTTP on the real database: targets, ownership, configs,
first-use typing, idempotent re-sends, lists and deletes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.conftest import Api


async def _run(api: Api, headers: dict[str, str] | None = None, **body: Any) -> str:
    resp = await api.client.post("/runs", json={"name": "qa", **body}, headers=headers or api.alice)
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    return run_id


async def _score(api: Api, run_id: str, status: int = 201, **body: Any) -> dict[str, Any]:
    resp = await api.client.post(
        f"/runs/{run_id}/scores",
        json={"name": "helpfulness", "value": 0.8, **body},
        headers=api.alice,
    )
    assert resp.status_code == status, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def test_score_a_run_and_read_it_back(api: Api) -> None:
    run_id = await _run(api)
    made = await _score(
        api,
        run_id,
        comment="clear answer",
        author="reviewer@x",
        source="human",
        metadata={"ticket": 7},
    )
    assert made["target_type"] == "run"
    assert made["target_id"] == run_id
    assert made["run_id"] == run_id
    assert made["actor"] == "alice"
    assert made["data_type"] == "numeric"
    assert made["value"] == 0.8
    assert made["source"] == "human"
    assert made["comment"] == "clear answer"
    label = await _score(api, run_id, name="verdict", value="correct")
    assert label["data_type"] == "categorical"
    assert label["value"] == "correct"
    thumbs = await _score(api, run_id, name="user_thumbs", value=False)
    assert thumbs["data_type"] == "boolean"
    assert thumbs["value"] is False

    listed = await api.client.get(f"/runs/{run_id}/scores", headers=api.alice)
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["items"]] == ["user_thumbs", "verdict", "helpfulness"]
    one = await api.client.get(f"/scores/{made['id']}", headers=api.alice)
    assert one.json() == made
    by_name = await api.client.get(
        f"/runs/{run_id}/scores", params={"name": "verdict"}, headers=api.alice
    )
    assert [s["value"] for s in by_name.json()["items"]] == ["correct"]


async def test_other_actors_runs_and_scores_answer_as_runs_do(api: Api) -> None:
    run_id = await _run(api)
    made = await _score(api, run_id)
    c, bob = api.client, api.bob
    assert (await c.get(f"/runs/{run_id}", headers=bob)).status_code == 403
    resp = await c.post(f"/runs/{run_id}/scores", json={"name": "x", "value": 1}, headers=bob)
    assert resp.status_code == 403
    assert (await c.get(f"/runs/{run_id}/scores", headers=bob)).status_code == 403
    assert (await c.get(f"/scores/{made['id']}", headers=bob)).status_code == 403
    assert (await c.delete(f"/scores/{made['id']}", headers=bob)).status_code == 403
    body = {"name": "x", "value": 1, "target_type": "run", "target_id": run_id}
    assert (await c.post("/scores", json=body, headers=bob)).status_code == 403
    # Bob cannot take over Alice's score by sending its id against his own run.
    bobs_run = await _run(api, headers=bob)
    steal = {"id": made["id"], "name": "helpfulness", "value": 0.1}
    assert (await c.post(f"/runs/{bobs_run}/scores", json=steal, headers=bob)).status_code == 403
    assert (await c.get("/scores", headers=bob)).json()["items"] == []
    unknown = uuid.uuid4()
    assert (await c.post(f"/runs/{unknown}/scores", json=steal, headers=bob)).status_code == 404
    assert (await c.get(f"/runs/{unknown}/scores", headers=bob)).status_code == 404
    assert (await c.get("/runs/not-a-uuid/scores", headers=bob)).status_code == 422
    assert (await c.get(f"/runs/{run_id}/scores")).status_code == 401
    kept = await c.get(f"/scores/{made['id']}", headers=api.alice)
    assert kept.json()["value"] == 0.8


async def test_resending_by_id_or_key_updates_never_duplicates(api: Api) -> None:
    run_id = await _run(api)
    sid = str(uuid.uuid4())
    first = await _score(api, run_id, id=sid, value=0.2)
    again = await _score(api, run_id, status=200, id=sid, value=0.9, comment="on reflection")
    assert again["id"] == sid
    assert again["value"] == 0.9
    assert again["comment"] == "on reflection"
    assert again["created_at"] == first["created_at"]
    assert again["updated_at"] > first["updated_at"]

    h = {**api.alice, "Idempotency-Key": "review-1"}
    body = {"name": "verdict", "value": "wrong"}
    keyed = await api.client.post(f"/runs/{run_id}/scores", json=body, headers=h)
    assert keyed.status_code == 201
    body["value"] = "right"
    rekeyed = await api.client.post(f"/runs/{run_id}/scores", json=body, headers=h)
    assert rekeyed.status_code == 200
    assert rekeyed.json()["id"] == keyed.json()["id"]
    assert rekeyed.json()["value"] == "right"
    # The key names one score: another id with it is a conflict, not a second score.
    clash = {**body, "id": str(uuid.uuid4())}
    assert (
        await api.client.post(f"/runs/{run_id}/scores", json=clash, headers=h)
    ).status_code == 409

    listed = (await api.client.get(f"/runs/{run_id}/scores", headers=api.alice)).json()["items"]
    assert sorted(s["value"] for s in listed if s["name"] == "helpfulness") == [0.9]
    assert [s["value"] for s in listed if s["name"] == "verdict"] == ["right"]


async def test_configs_type_their_names_and_refuse_values_outside(api: Api) -> None:
    c, h = api.client, api.alice
    run_id = await _run(api)
    cfg = {"name": "helpfulness", "data_type": "numeric", "min_value": 0, "max_value": 1}
    made = await c.post("/score-configs", json=cfg, headers=h)
    assert made.status_code == 201, made.text
    assert (await c.post("/score-configs", json=cfg, headers=h)).status_code == 200
    labels = {"name": "verdict", "data_type": "categorical", "categories": ["right", "wrong"]}
    assert (await c.post("/score-configs", json=labels, headers=h)).status_code == 201

    too_high = await _score(api, run_id, status=422, value=1.5)
    assert "helpfulness" in too_high["detail"]
    assert "1.5" in too_high["detail"]
    wrong_type = await _score(api, run_id, status=422, value="great")
    assert "helpfulness" in wrong_type["detail"]
    assert "numeric" in wrong_type["detail"]
    unknown_label = await _score(api, run_id, status=422, name="verdict", value="maybe")
    assert "verdict" in unknown_label["detail"]
    assert (await _score(api, run_id, name="verdict", value="right"))["value"] == "right"
    assert (await _score(api, run_id, value=1))["value"] == 1

    listed = await c.get("/score-configs", headers=h)
    assert [x["name"] for x in listed.json()] == ["helpfulness", "verdict"]
    assert (await c.get("/score-configs", headers=api.bob)).json() == []
    assert (await c.get("/score-configs/verdict", headers=h)).json()["categories"] == [
        "right",
        "wrong",
    ]
    assert (await c.get("/score-configs/verdict", headers=api.bob)).status_code == 404
    # Bob's scores of the same name are not held to Alice's config.
    bobs = await _run(api, headers=api.bob)
    resp = await c.post(
        f"/runs/{bobs}/scores", json={"name": "helpfulness", "value": 7}, headers=api.bob
    )
    assert resp.status_code == 201

    bad_configs = [
        {"name": "x", "data_type": "numeric", "min_value": 2, "max_value": 1},
        {"name": "x", "data_type": "categorical"},
        {"name": "x", "data_type": "boolean", "categories": ["a"]},
        {"name": "x", "data_type": "percent"},
        {"name": "x", "data_type": "numeric", "min_value": "NaN"},
    ]
    for bad in bad_configs:
        assert (await c.post("/score-configs", json=bad, headers=h)).status_code == 422, bad
    assert (await c.delete("/score-configs/verdict", headers=h)).status_code == 204
    assert (await c.delete("/score-configs/verdict", headers=h)).status_code == 404


async def test_names_without_a_config_keep_the_type_of_their_first_use(api: Api) -> None:
    run_id = await _run(api)
    await _score(api, run_id, name="tone", value="warm")
    refused = await _score(api, run_id, status=422, name="tone", value=0.3)
    assert "tone" in refused["detail"]
    assert "categorical" in refused["detail"]
    # A re-send of the only score of a name may change its type.
    only = await _score(api, run_id, name="solo", value=1)
    changed = await _score(api, run_id, status=200, id=only["id"], name="solo", value="x")
    assert changed["data_type"] == "categorical"


async def test_bad_values_are_422_naming_the_field(api: Api) -> None:
    run_id = await _run(api)
    bad = [
        ({"name": "x"}, "value"),
        ({"name": "x", "value": None}, "value"),
        ({"name": "x", "value": [1]}, "value"),
        ({"name": "x", "value": {"a": 1}}, "value"),
        ({"name": "x", "value": 1, "source": "robot"}, "source"),
        ({"name": "", "value": 1}, "name"),
        ({"value": 1}, "name"),
        ({"name": "x", "value": 1, "actor": "bob"}, "actor"),
        ({"name": "x", "value": 1, "target_type": "run"}, "target_type"),
    ]
    for body, field in bad:
        resp = await api.client.post(f"/runs/{run_id}/scores", json=body, headers=api.alice)
        assert resp.status_code == 422, body
        assert field in resp.text, (body, resp.text)
    nan = await api.client.post(
        f"/runs/{run_id}/scores",
        content=b'{"name": "x", "value": NaN}',
        headers={**api.alice, "Content-Type": "application/json"},
    )
    assert nan.status_code == 422


async def test_steps_llm_calls_and_threads_are_scored_through_scores(api: Api) -> None:
    c, h = api.client, api.alice
    run_id = await _run(api)
    steps = await c.post(f"/runs/{run_id}/steps", json={"step_index": 0, "name": "s"}, headers=h)
    step_id = steps.json()[0]["id"]
    call = await c.post(f"/runs/{run_id}/llm-calls", json={"model": "m"}, headers=h)
    call_id = call.json()["id"]
    thread = await c.post("/threads", json={"agent_type": "chat"}, headers=h)
    thread_id = thread.json()["id"]
    for kind, target in (("step", step_id), ("llm_call", call_id), ("thread", thread_id)):
        body = {"name": "ok", "value": True, "target_type": kind, "target_id": target}
        made = await c.post("/scores", json=body, headers=h)
        assert made.status_code == 201, made.text
        assert made.json()["target_id"] == target
        assert made.json()["run_id"] == (None if kind == "thread" else run_id)
        foreign = await c.post("/scores", json=body, headers=api.bob)
        assert foreign.status_code == 403
    unknown = {"name": "ok", "value": True, "target_type": "step", "target_id": str(uuid.uuid4())}
    missing = await c.post("/scores", json=unknown, headers=h)
    assert missing.status_code == 422
    assert "target_id" in missing.json()["detail"]

    # The run's list holds its steps' and calls' scores; /scores filters by target.
    of_run = (await c.get(f"/runs/{run_id}/scores", headers=h)).json()["items"]
    assert {s["target_type"] for s in of_run} == {"step", "llm_call"}
    threads = await c.get("/scores", params={"target_type": "thread"}, headers=h)
    assert [s["target_id"] for s in threads.json()["items"]] == [thread_id]
    no_type = await c.get("/scores", params={"target_id": step_id}, headers=h)
    assert no_type.status_code == 422

    # Deleting the step deletes its score (the run's other scores stay).
    await c.delete(f"/runs/{run_id}", headers=h)
    assert (await c.get("/scores", headers=h)).json()["items"][0]["target_type"] == "thread"


async def test_lists_filter_page_and_delete(api: Api) -> None:
    c, h = api.client, api.alice
    run_id = await _run(api)
    for i in range(5):
        await _score(api, run_id, name="n", value=i, source="evaluator" if i % 2 else "human")
    first = await c.get("/scores", params={"limit": 2, "source": "human"}, headers=h)
    assert [s["value"] for s in first.json()["items"]] == [4, 2]
    cursor = first.json()["next_cursor"]
    second = await c.get(
        "/scores", params={"limit": 2, "source": "human", "cursor": cursor}, headers=h
    )
    assert [s["value"] for s in second.json()["items"]] == [0]
    assert second.json()["next_cursor"] is None
    forged = await c.get("/scores", params={"cursor": cursor + "x"}, headers=h)
    assert forged.status_code == 422
    newest = first.json()["items"][0]
    since = await c.get("/scores", params={"created_after": newest["created_at"]}, headers=h)
    assert [s["id"] for s in since.json()["items"]] == [newest["id"]]
    assert (await c.get("/scores", params={"source": "x"}, headers=h)).status_code == 422
    assert (await c.delete(f"/scores/{newest['id']}", headers=h)).status_code == 204
    assert (await c.get(f"/scores/{newest['id']}", headers=h)).status_code == 404
    assert (await c.delete(f"/scores/{newest['id']}", headers=h)).status_code == 404


async def test_runs_filtered_by_a_score(api: Api) -> None:
    c, h = api.client, api.alice
    ids = {}
    for value in (0.2, 0.6, 0.9):
        ids[value] = await _run(api)
        await _score(api, ids[value], value=value)
    await _score(api, ids[0.2], name="verdict", value="correct")
    await _score(api, ids[0.9], name="user_thumbs", value=False)
    unscored = await _run(api)
    steps = await c.post(f"/runs/{unscored}/steps", json={"step_index": 0}, headers=h)
    step_score = {
        "name": "helpfulness",
        "value": 0.1,
        "target_type": "step",
        "target_id": steps.json()[0]["id"],
    }
    assert (await c.post("/scores", json=step_score, headers=h)).status_code == 201
    bobs = await _run(api, headers=api.bob)
    resp = await c.post(
        f"/runs/{bobs}/scores", json={"name": "helpfulness", "value": 0.1}, headers=api.bob
    )
    assert resp.status_code == 201

    async def matching(condition: str, **params: Any) -> list[str]:
        resp = await c.get("/runs", params={"score": condition, **params}, headers=h)
        assert resp.status_code == 200, resp.text
        if "limit" not in params:
            assert resp.json()["total"] == len(resp.json()["items"])
        return [r["id"] for r in resp.json()["items"]]

    # Only run-level scores count (the step's 0.1 does not); only the caller's runs.
    assert await matching("helpfulness<0.5") == [ids[0.2]]
    assert await matching("helpfulness>=0.6") == [ids[0.9], ids[0.6]]
    assert await matching("helpfulness > 0.6") == [ids[0.9]]
    assert await matching("helpfulness<=0.6") == [ids[0.6], ids[0.2]]
    assert await matching("helpfulness=0.9") == [ids[0.9]]
    assert await matching("verdict=correct") == [ids[0.2]]
    assert await matching("user_thumbs=false") == [ids[0.9]]
    assert await matching("user_thumbs=true") == []
    assert await matching("helpfulness>=0", name="qa", limit=1) == [ids[0.9]]
    for bad in ("helpfulness", "helpfulness<good", "<0.5", "helpfulness<true", "x<nan"):
        resp = await c.get("/runs", params={"score": bad}, headers=h)
        assert resp.status_code == 422, (bad, resp.text)
        assert "score" in resp.text


async def test_library_filters_runs_by_a_score(api: Api) -> None:
    from chad_memory import RunFilter
    from chad_memory.schemas.scores import ScoreCondition

    low = await _run(api)
    await _score(api, low, value=0.1)
    high = await _run(api)
    await _score(api, high, value=0.7)
    condition = RunFilter(actor="alice", score="helpfulness<0.5")
    assert condition.score == ScoreCondition(name="helpfulness", op="<", value=0.1 * 5)
    page = await api.store.list_runs(condition)
    assert [r.id for r in page.items] == [uuid.UUID(low)]
    assert await api.store.count_runs(RunFilter(actor="alice", score="helpfulness>0.5")) == 1
    assert await api.store.count_runs(RunFilter(actor="bob", score="helpfulness>0.5")) == 0


async def test_usage_report_aggregates_scores_per_group(api: Api) -> None:
    c, h = api.client, api.alice
    for model, values in (("m1", (0.2, 0.6)), ("m2", (1.0,))):
        for value in values:
            run_id = await _run(api, name=f"agent-{model}")
            call = await c.post(f"/runs/{run_id}/llm-calls", json={"model": model}, headers=h)
            assert call.status_code == 201
            await _score(api, run_id, value=value)
            await _score(api, run_id, name="verdict", value="right" if value > 0.5 else "wrong")
    bobs = await _run(api, headers=api.bob)
    await c.post(f"/runs/{bobs}/scores", json={"name": "helpfulness", "value": 9}, headers=api.bob)

    report = await c.get("/analytics/usage", params={"group_by": "model"}, headers=h)
    assert report.status_code == 200, report.text
    rows = {(s["group"]["model"], s["name"]): s for s in report.json()["scores"]}
    assert set(rows) == {
        ("m1", "helpfulness"),
        ("m1", "verdict"),
        ("m2", "helpfulness"),
        ("m2", "verdict"),
    }
    assert rows["m1", "helpfulness"]["count"] == 2
    assert rows["m1", "helpfulness"]["mean"] == pytest.approx(0.4)
    assert rows["m1", "verdict"]["labels"] == {"right": 1, "wrong": 1}
    assert rows["m1", "verdict"]["mean"] is None
    assert rows["m2", "helpfulness"]["mean"] == 1.0

    by_name = await c.get("/analytics/usage", params={"group_by": "run_name,day"}, headers=h)
    names = {(s["group"]["run_name"], s["name"]) for s in by_name.json()["scores"]}
    assert ("agent-m1", "helpfulness") in names
    assert all(s["group"]["day"] is not None for s in by_name.json()["scores"])
