"""The feedback form's rules, in-process: CSRF, ownership, configs, and what is stored."""

from __future__ import annotations

from tests.ui.conftest import Dashboard, csrf_of


async def test_feedback_is_signed_in_csrf_checked_and_owned(dash: Dashboard) -> None:
    c, s = dash.client, dash.sample
    await dash.sign_in(s.alice_key)
    run_page = await c.get(f"/ui/runs/{s.support_run}")
    assert run_page.status_code == 200
    assert 'data-testid="feedback"' in run_page.text
    token = csrf_of(run_page.text)
    url = f"/ui/runs/{s.support_run}/feedback"

    forged = await c.post(url, data={"thumbs": "up", "csrf": "forged"})
    assert forged.status_code == 403
    missing = await c.post(url, data={"thumbs": "up"})
    assert missing.status_code == 403
    nothing = await c.post(url, data={"csrf": token, "comment": "hm"})
    assert nothing.status_code == 422
    unknown = await c.post(url, data={"csrf": token, "score.nope": "1"})
    assert unknown.status_code == 422
    foreign = await c.post(f"/ui/runs/{s.bob_run}/feedback", data={"thumbs": "up", "csrf": token})
    assert foreign.status_code == 403
    auth = {"Authorization": f"Bearer {s.alice_key}"}
    assert (await c.get(f"/runs/{s.support_run}/scores", headers=auth)).json()["items"] == []

    config = {"name": "tone", "data_type": "categorical", "categories": ["warm", "cold"]}
    assert (await c.post("/score-configs", json=config, headers=auth)).status_code == 201
    refused = await c.post(url, data={"csrf": token, "score.tone": "hot"})
    assert refused.status_code == 422
    assert "tone" in refused.text
    done = await c.post(
        url, data={"csrf": token, "thumbs": "up", "comment": "kind", "score.tone": "warm"}
    )
    assert done.status_code == 303
    stored = (await c.get(f"/runs/{s.support_run}/scores", headers=auth)).json()["items"]
    assert {(x["name"], x["value"], x["source"], x["author"]) for x in stored} == {
        ("user_thumbs", True, "human", "alice"),
        ("tone", "warm", "human", "alice"),
    }
    assert {x["comment"] for x in stored} == {"kind"}
    listing = await c.get("/ui/runs")
    assert "👍" in listing.text
    assert "tone <b>warm</b>" in listing.text

    # Signed out: the form's post is a redirect to sign in, and writes nothing.
    out = await c.post("/ui/logout", data={"csrf": token})
    assert out.status_code == 303
    after = await c.post(url, data={"csrf": token, "thumbs": "down"})
    assert after.status_code == 303
    assert "/ui/login" in after.headers["location"]
    assert len((await c.get(f"/runs/{s.support_run}/scores", headers=auth)).json()["items"]) == 2


async def test_experiments_page_compares_side_by_side(dash: Dashboard) -> None:
    c, s = dash.client, dash.sample
    auth = {"Authorization": f"Bearer {s.alice_key}"}
    ds = (await c.post("/datasets", json={"name": "qa"}, headers=auth)).json()
    change = await c.post(f"/datasets/{ds['id']}/items", json=[{"input": "2+2"}], headers=auth)
    item = change.json()["items"][0]["item_id"]
    ids = []
    for name, output in (("baseline", "5"), ("candidate", "4")):
        made = await c.post(
            "/experiments", json={"name": name, "dataset_id": ds["id"]}, headers=auth
        )
        ids.append(made.json()["id"])
        meta = {"chad.experiment_id": made.json()["id"], "chad.dataset_item_id": item}
        run = await c.post("/runs", json={"result": output, "metadata": meta}, headers=auth)
        assert run.status_code == 201
    await dash.sign_in(s.alice_key)
    listing = await c.get("/ui/experiments")
    assert listing.status_code == 200
    assert "candidate" in listing.text
    page = await c.get("/ui/experiments/compare", params={"ids": ids})
    assert page.status_code == 200, page.text
    assert "baseline" in page.text
    assert "&#34;4&#34;" in page.text or '"4"' in page.text
    await c.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    await dash.sign_in(s.bob_key)
    assert (await c.get("/ui/experiments/compare", params={"ids": ids})).status_code == 403
