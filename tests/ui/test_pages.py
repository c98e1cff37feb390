"""The dashboard's rules over HTTP, in-process: sessions, CSRF, ownership, bad input,
headers. What a browser shows is in test_browser.py; these are the edges around it."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from apps.core_api.main import create_app
from apps.core_api.ui import CONTENT_SECURITY_POLICY
from apps.core_api.ui.pages import RUNS_PAGE, STEPS_PAGE
from apps.core_api.ui.session import COOKIE
from chad_memory import ApiKeyStore, LLMCallCreate, PostgresStore, RunCreate, StepCreate
from chad_memory.settings import Settings
from tests.ui.conftest import SECRET, Dashboard, csrf_of


async def test_pages_need_a_session_and_keep_where_you_were_going(dash: Dashboard) -> None:
    run = dash.sample.support_run
    page = await dash.client.get(f"/ui/runs/{run}")
    assert page.status_code == 303
    assert page.headers["location"] == f"/ui/login?next=%2Fui%2Fruns%2F{run}"
    form = await dash.client.get(page.headers["location"])
    assert f'name="next" value="/ui/runs/{run}"' in form.text
    signed = await dash.client.post(
        "/ui/login",
        data={
            "api_key": dash.sample.alice_key,
            "csrf": csrf_of(form.text),
            "next": f"/ui/runs/{run}",
        },
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == f"/ui/runs/{run}"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/ui" in cookie
    assert dash.sample.alice_key not in cookie
    assert (await dash.client.get(f"/ui/runs/{run}")).status_code == 200


async def test_sign_in_refuses_a_missing_or_foreign_csrf_token(dash: Dashboard) -> None:
    await dash.client.get("/ui/login")
    for token in ("", "0" * 64):
        answer = await dash.client.post(
            "/ui/login", data={"api_key": dash.sample.alice_key, "csrf": token}
        )
        assert answer.status_code == 403
        assert "expired or came from another site" in answer.text
    # Nothing was signed in.
    assert (await dash.client.get("/ui/runs")).status_code == 303


async def test_a_wrong_key_says_so_and_signs_nobody_in(dash: Dashboard) -> None:
    answer = await dash.sign_in("cm_not-a-key")
    assert answer.status_code == 401
    assert "unknown or revoked" in answer.text
    assert (await dash.client.get("/ui/runs")).status_code == 303


async def test_sign_in_draws_a_new_session_id(dash: Dashboard) -> None:
    anonymous_form = (await dash.client.get("/ui/login")).text
    before = dash.client.cookies[COOKIE]
    await dash.sign_in(dash.sample.alice_key)
    after = dash.client.cookies[COOKIE]
    assert before.split(".")[0] != after.split(".")[0]
    # A token minted before sign-in (say, planted by someone else) is no good after it.
    stale = await dash.client.post("/ui/logout", data={"csrf": csrf_of(anonymous_form)})
    assert stale.status_code == 403
    assert (await dash.client.get("/ui/runs")).status_code == 200


async def test_sign_out_needs_its_token_and_ends_the_session(dash: Dashboard) -> None:
    await dash.sign_in(dash.sample.alice_key)
    refused = await dash.client.post("/ui/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await dash.client.get("/ui/runs")).status_code == 200
    token = csrf_of((await dash.client.get("/ui/runs")).text)
    out = await dash.client.post("/ui/logout", data={"csrf": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login"
    assert (await dash.client.get("/ui/runs")).status_code == 303


async def test_a_tampered_cookie_is_no_session(dash: Dashboard) -> None:
    await dash.sign_in(dash.sample.alice_key)
    payload, signature = dash.client.cookies[COOKIE].rsplit(".", 1)
    forged = payload.replace(payload[5], "A" if payload[5] != "A" else "B", 1)
    dash.client.cookies.set(COOKIE, f"{forged}.{signature}", path="/ui")
    assert (await dash.client.get("/ui/runs")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(dash: Dashboard, session_factory: object) -> None:
    await dash.sign_in(dash.sample.alice_key)
    assert (await dash.client.get("/ui/runs")).status_code == 200
    keys = ApiKeyStore(session_factory)  # type: ignore[arg-type]
    (alice,) = [k for k in await keys.list_keys("alice") if k.revoked_at is None]
    await keys.revoke_key(alice.id)
    assert (await dash.client.get("/ui/runs")).status_code == 303


async def test_next_never_leaves_the_dashboard(dash: Dashboard) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/runs", "/ui\\x"):
        form = await dash.client.get("/ui/login", params={"next": target})
        assert 'name="next" value="/ui/runs"' in form.text
        signed = await dash.client.post(
            "/ui/login",
            data={"api_key": dash.sample.alice_key, "csrf": csrf_of(form.text), "next": target},
        )
        assert signed.headers["location"] == "/ui/runs", target


async def test_another_actors_things_answer_the_403_page(dash: Dashboard) -> None:
    await dash.sign_in(dash.sample.alice_key)
    for url in (
        f"/ui/runs/{dash.sample.bob_run}",
        f"/ui/runs/{dash.sample.bob_run}/live",
    ):
        page = await dash.client.get(url)
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert "Not yours" in page.text
        assert "bob-private" not in page.text
    assert (await dash.client.get(f"/ui/runs/{uuid.uuid4()}")).status_code == 404
    assert (await dash.client.get("/ui/runs/not-a-uuid")).status_code == 422
    assert (await dash.client.get(f"/ui/memory/{uuid.uuid4()}")).status_code == 404
    # Bob sees his own run and none of alice's.
    await dash.client.post(
        "/ui/logout", data={"csrf": csrf_of((await dash.client.get("/ui/runs")).text)}
    )
    await dash.sign_in(dash.sample.bob_key)
    runs = await dash.client.get("/ui/runs")
    assert "bob-private" in runs.text
    assert "support-agent" not in runs.text
    assert (await dash.client.get(f"/ui/runs/{dash.sample.support_run}")).status_code == 403
    assert (await dash.client.get(f"/ui/threads/{dash.sample.thread}")).status_code == 403
    assert (await dash.client.get(f"/ui/memory/{dash.sample.embedding}")).status_code == 403


async def test_the_api_still_answers_json(dash: Dashboard) -> None:
    answer = await dash.client.get(
        f"/runs/{dash.sample.bob_run}",
        headers={"Authorization": f"Bearer {dash.sample.alice_key}"},
    )
    assert answer.status_code == 403
    assert answer.json() == {"detail": f"run {dash.sample.bob_run} belongs to another actor"}
    assert "content-security-policy" not in answer.headers
    # Form bodies are the dashboard's only: the API still wants JSON.
    form = await dash.client.post("/runs", data={"name": "x"})
    assert form.status_code == 415


BAD_FILTERS = [
    ({"status": "exploded"}, "status"),
    ({"from": "yesterday"}, "from: expected a date"),
    ({"thread_id": "nope"}, "thread_id"),
    ({"cursor": "garbage"}, "cursor is malformed"),
]


async def test_bad_filters_say_what_is_wrong(dash: Dashboard) -> None:
    await dash.sign_in(dash.sample.alice_key)
    for query, message in BAD_FILTERS:
        page = await dash.client.get("/ui/runs", params=query)
        assert page.status_code == 422, query
        assert message in page.text, query
        # The form keeps what was typed, so it can be corrected.
        field, typed = next(iter(query.items()))
        if field in ("from", "thread_id"):
            assert f'value="{typed}"' in page.text


async def test_filters_and_keyset_pages_live_in_the_url(
    dash: Dashboard, store: PostgresStore
) -> None:
    for _ in range(55):
        await store.save_run(
            RunCreate(actor="alice", name="bulk", tags=["many"], status="succeeded")
        )
    await dash.sign_in(dash.sample.alice_key)
    first = await dash.client.get("/ui/runs", params={"tag": "many"})
    assert first.text.count('class="run-link"') == 50
    match = re.search(r'href="(/ui/runs\?[^"]*cursor=[^"]+)" rel="next"', first.text)
    assert match, "no link to the next page"
    link = match.group(1).replace("&amp;", "&")
    assert "tag=many" in link
    second = await dash.client.get(link)
    assert second.text.count('class="run-link"') == 5
    assert 'rel="next"' not in second.text
    today = datetime.now(UTC).date()
    dated = await dash.client.get(
        "/ui/runs", params={"tag": "many", "from": str(today), "to": str(today)}
    )
    assert "55 matching" in dated.text
    past = await dash.client.get("/ui/runs", params={"to": str(today - timedelta(days=3))})
    assert "No runs match" in past.text


async def test_every_page_carries_the_security_headers(dash: Dashboard) -> None:
    await dash.sign_in(dash.sample.alice_key)
    urls = [
        "/ui/login",
        "/ui/runs",
        f"/ui/runs/{dash.sample.support_run}",
        "/ui/usage",
        "/ui/threads",
        f"/ui/threads/{dash.sample.thread}",
        "/ui/memory",
        f"/ui/memory/{dash.sample.embedding}",
        f"/ui/runs/{dash.sample.bob_run}",
        "/ui/no-such-page",
        "/ui/static/ui.css",
        "/ui/static/vendor/htmx-2.0.11.min.js",
    ]
    for url in urls:
        answer = await dash.client.get(url)
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        if answer.headers["content-type"].startswith("text/html"):
            # Nothing inline for the CSP to refuse: no inline script, handler or style.
            assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))", answer.text)
            assert not re.search(r"\son[a-z]+=|\sstyle=|<style", answer.text), url
    assert (await dash.client.get("/")).headers["location"] == "/ui"


async def test_every_asset_a_page_names_is_served(dash: Dashboard) -> None:
    await dash.sign_in(dash.sample.alice_key)
    names: set[str] = set()
    for url in ("/ui/runs", "/ui/usage"):
        names |= set(
            re.findall(r'(?:src|href)="(/ui/static/[^"?]+)', (await dash.client.get(url)).text)
        )
    assert len(names) >= 5
    for name in names:
        assert (await dash.client.get(name)).status_code == 200, name


async def test_a_run_of_10000_steps_renders_one_page_of_them(
    dash: Dashboard, store: PostgresStore
) -> None:
    run = await store.save_run(RunCreate(actor="alice", name="huge", status="succeeded"))
    start = datetime.now(UTC)
    await store.save_steps(
        [
            StepCreate(
                run_id=run.id,
                step_index=i,
                name=f"step-{i}",
                type="tool",
                started_at=start + timedelta(milliseconds=i),
                duration_ms=1.0,
                input={"i": i},
            )
            for i in range(10_000)
        ]
    )
    await dash.sign_in(dash.sample.alice_key)
    began = time.perf_counter()
    page = await dash.client.get(f"/ui/runs/{run.id}")
    elapsed = time.perf_counter() - began
    assert page.status_code == 200
    assert page.text.count('<details class="step"') == STEPS_PAGE
    assert "Later steps" in page.text
    assert len(page.text) < 1_000_000
    match = re.search(r'href="(/ui/runs/[^"]+\?cursor=[^"]+)" rel="next"', page.text)
    assert match, "no link to the later steps"
    later = await dash.client.get(match.group(1))
    assert later.text.count('<details class="step"') == STEPS_PAGE
    assert "step-200<" in later.text
    assert "step-199<" not in later.text
    assert "First steps" in later.text
    # Generous for a shared CI machine: one page of steps is read, not 10,000.
    print(f"10,000-step run page: {elapsed:.2f} s")
    assert elapsed < 10, elapsed
    bad = await dash.client.get(f"/ui/runs/{run.id}", params={"cursor": "forged"})
    assert bad.status_code == 422


async def test_the_cookie_is_secure_over_https(dash: Dashboard) -> None:
    plain = await dash.client.get("http://t/ui/login")
    assert "secure" not in plain.headers["set-cookie"].lower()
    tls = await dash.client.get("https://t/ui/login")
    assert "; secure" in tls.headers["set-cookie"].lower()


async def test_behind_an_auth_proxy_the_header_names_the_actor(
    dash: Dashboard, engine: AsyncEngine
) -> None:
    app = create_app(
        engine=engine,
        settings=Settings(auth_mode="trusted_header", ui_session_secret=SecretStr(SECRET)),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        page = await client.get("/ui/runs", headers={"X-Actor-ID": "bob"})
        assert page.status_code == 200
        assert "bob-private" in page.text
        assert "support-agent" not in page.text
        assert (await client.get("/ui/runs")).status_code == 303
        assert (await client.get("/ui/runs", headers={"X-Actor-ID": " "})).status_code == 303
        other = await client.get(
            f"/ui/runs/{dash.sample.support_run}", headers={"X-Actor-ID": "bob"}
        )
        assert other.status_code == 403


async def test_a_poll_after_the_session_ended_sends_the_page_to_sign_in(dash: Dashboard) -> None:
    live = f"/ui/runs/{dash.sample.running_run}/live"
    answer = await dash.client.get(live, headers={"HX-Request": "true"})
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/ui/login"
    await dash.sign_in(dash.sample.alice_key)
    fragment = await dash.client.get(live, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.startswith('<div id="run-body" class="live" hx-get=')
    assert "<html" not in fragment.text


async def test_in_local_mode_this_machine_is_the_local_actor(
    dash: Dashboard, engine: AsyncEngine
) -> None:
    settings = Settings(auth_mode="local", local_actor="alice", ui_session_secret=SecretStr(SECRET))
    app = create_app(engine=engine, settings=settings)
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=local, base_url="http://127.0.0.1:8000") as here,
        httpx.AsyncClient(transport=remote, base_url="http://127.0.0.1:8000") as there,
    ):
        page = await here.get("/ui/runs")
        assert page.status_code == 200
        assert "support-agent" in page.text
        assert "bob-private" not in page.text
        assert (await here.get(f"/ui/runs/{dash.sample.bob_run}")).status_code == 403
        assert (await there.get("/ui/runs")).status_code == 303


BULK_RUNS = RUNS_PAGE + 5


async def test_usage_table_counts_every_call_of_the_window(
    dash: Dashboard, store: PostgresStore
) -> None:
    # Runs enough for a page of runs and more, each with one priced call of one model.
    for i in range(BULK_RUNS):
        run = await store.save_run(RunCreate(actor="alice", name=f"bulk {i}"))
        await store.save_llm_call(
            LLMCallCreate(
                run_id=run.id,
                provider="acme",
                model="bulk-model",
                prompt_tokens=10,
                completion_tokens=5,
                cost_usd=Decimal("0.001"),
                latency_ms=100.0,
            )
        )
    await dash.sign_in(dash.sample.alice_key)
    page = (await dash.client.get("/ui/usage")).text
    row = re.search(r"<tr><td>acme/bulk-model</td>(.*?)</tr>", page)
    assert row is not None, page
    cells = re.findall(r'<td class="num">(.*?)</td>', row.group(1))
    calls, runs, tokens, cost = cells[:4]
    assert calls == runs == str(BULK_RUNS)
    assert tokens == str(BULK_RUNS * 15)
    assert "0.055" in cost
