"""The dashboard in a real headless Chromium (Playwright) against a real `chad-memory serve`.

One server and one browser for the module; each test gets a fresh browser context (no
cookies). The path a newcomer takes: sign in, find the run, open it, open a step.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from chad_memory import ApiKeyStore
from chad_memory.database import create_engine, get_session_factory
from tests.database import run_admin, unique_name, with_database
from tests.ui.live import chromium, serve
from tests.ui.sample import Sample, seed

T = TypeVar("T")


@dataclass
class Live:
    base: str
    sample: Sample
    url: str


def _blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a thread of its own: Playwright's sync API keeps an
    event loop running on this one, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _seed(url: str) -> Sample:
    engine = create_engine(url, pool_size=2, max_overflow=0)
    try:
        return await seed(get_session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def live(admin_url: str, template_db: str) -> Iterator[Live]:
    name = unique_name("chad_ui")
    _blocking(run_admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    url = with_database(admin_url, name)
    try:
        sample = _blocking(_seed(url))
        with serve(url) as base:
            yield Live(base, sample, url)
    finally:
        _blocking(run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(live: Live, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(base_url=live.base, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems: list[str] = []

    def note(msg: ConsoleMessage) -> None:
        # The 403 page is an expected answer, which Chromium logs as a failed load.
        if msg.type == "error" and "status of 403" not in msg.text:
            problems.append(msg.text)

    tab.on("console", note)
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    yield tab
    context.close()
    # A CSP violation or a script error shows up here: the pages must run clean.
    assert problems == []


def sign_in(page: Page, key: str) -> None:
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/runs$"))


def test_sign_in_filter_open_a_run_and_a_step(page: Page, live: Live) -> None:
    sign_in(page, live.sample.alice_key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "chad_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    expect(page.get_by_test_id("actor")).to_have_text("alice")
    rows = page.locator("table.runs tbody tr")
    expect(rows.first).to_be_visible()
    assert "bob-private" not in page.content()

    # Filter by status through the form: the state goes into the URL and survives a reload.
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    page.reload()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("research-agent")
    expect(page.get_by_label("Status")).to_have_value("failed")

    # A tag link narrows to the support run; open it.
    page.goto("/ui/runs?tag=support")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name="support-agent").click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{live.sample.support_run}$"))

    waterfall = page.get_by_test_id("waterfall")
    steps = waterfall.locator("details.step")
    expect(steps).to_have_count(5)
    # Nested under the "agent" step, with bars on the run's time axis.
    expect(waterfall.locator(".name.d1")).to_have_count(4)
    expect(waterfall.locator("svg rect.s-succeeded")).to_have_count(5)
    tool = steps.filter(has=page.locator("summary .name", has_text="search_orders"))
    tool_input = tool.get_by_test_id("step-input")
    expect(tool_input).to_be_hidden()
    tool.locator("summary").click()
    expect(tool_input).to_be_visible()
    expect(tool_input).to_contain_text('"order_id": "4411"')

    # The LLM calls with their cost, and the run's total.
    calls = page.get_by_test_id("llm-calls")
    expect(calls.locator("tbody tr")).to_have_count(2)
    first = Decimal("0.00000015") * 812 + Decimal("0.0000006") * 46
    expect(calls).to_contain_text(f"${first.normalize():f}")
    expect(page.get_by_test_id("run-cost")).to_contain_text("$0.0")


def test_conversation_forbidden_run_and_sign_out(page: Page, live: Live) -> None:
    sign_in(page, live.sample.alice_key)
    page.get_by_role("link", name="Conversations").click()
    page.get_by_role("link", name="Order #4411 is late").click()
    chat = page.get_by_test_id("chat")
    expect(chat.locator(".msg")).to_have_count(6)
    expect(chat.locator(".msg.r-assistant .tool pre").first).to_contain_text('"search_orders"')
    expect(page.locator("aside")).to_contain_text("support-agent")

    # Another actor's run by URL: the 403 page, not the run.
    response = page.goto(f"/ui/runs/{live.sample.bob_run}")
    assert response is not None
    assert response.status == 403
    expect(page.locator("h1")).to_contain_text("Not yours")
    assert "bob-private" not in page.content()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto("/ui/threads")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_running_run_refreshes_as_steps_arrive(page: Page, live: Live) -> None:
    sign_in(page, live.sample.alice_key)
    run = live.sample.running_run
    page.goto(f"/ui/runs/{run}")
    expect(page.locator(".pulse")).to_be_visible()
    expect(page.get_by_test_id("step-count")).to_have_text("1")
    api = httpx.Client(
        base_url=live.base, headers={"Authorization": f"Bearer {live.sample.alice_key}"}
    )
    with api:
        added = api.post(
            f"/runs/{run}/steps",
            json={"step_index": 1, "name": "refund_lookup", "type": "tool", "status": "running"},
        )
        assert added.status_code == 201, added.text
        expect(page.get_by_test_id("waterfall")).to_contain_text("refund_lookup")
        expect(page.get_by_test_id("step-count")).to_have_text("2")
        done = api.patch(f"/runs/{run}", json={"status": "succeeded"})
        assert done.status_code == 200, done.text
    # Finished: the page says so and stops polling.
    expect(page.locator("#run-body h1 .badge")).to_have_text("succeeded")
    expect(page.locator(".pulse")).to_have_count(0)
    expect(page.locator("#run-body[hx-trigger]")).to_have_count(0)


def test_usage_charts_and_more_like_this(page: Page, live: Live) -> None:
    sign_in(page, live.sample.alice_key)
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.locator("[data-chart][data-ready] canvas")).to_have_count(3)
    expect(page.get_by_test_id("usage-models")).to_contain_text("openai/gpt-4o-mini")
    expect(page.get_by_test_id("usage-models")).to_contain_text("anthropic/claude-3-5-haiku")

    page.get_by_role("link", name="Memory", exact=True).click()
    page.get_by_role("link", name=re.compile(r"^policies")).click()
    expect(page).to_have_url(re.compile(r"namespace=policies"))
    row = page.locator("tr", has_text="Orders ship within 2 business days.")
    row.get_by_role("link", name="More like this").click()
    hits = page.get_by_test_id("hits").locator("tbody tr")
    expect(hits).to_have_count(6)
    # Same topic first: the other shipping notes outscore the refund ones.
    expect(hits.first).to_contain_text(re.compile(r"late orders|DHL|International", re.I))
    scores = [float(s) for s in hits.locator(".score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)


def test_search_box_finds_and_links_with_highlighted_snippets(page: Page, live: Live) -> None:
    sign_in(page, live.sample.alice_key)
    box = page.get_by_role("searchbox", name="Search")
    box.fill("depot")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/search\?q=depot"))
    hits = page.get_by_test_id("search-hits").locator("li")
    expect(hits.first).to_be_visible()
    for mark in hits.locator("mark").all():
        expect(mark).to_have_text("depot")
    message = hits.filter(has=page.locator(".kind", has_text="message"))
    expect(message).to_have_count(1)
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("depot")
    message.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/ui/threads/"))
    expect(page.get_by_test_id("chat")).to_contain_text("left the depot today")

    # Every page carries the box; a step hit opens its run at the step.
    page.get_by_role("searchbox", name="Search").fill("search_orders")
    page.get_by_role("searchbox", name="Search").press("Enter")
    hits = page.get_by_test_id("search-hits").locator("li")
    step_hit = hits.filter(has=page.locator(".kind", has_text="step")).first
    expect(step_hit.locator("mark", has_text="search_orders").first).to_be_visible()
    step_hit.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[0-9a-f-]+#step-"))

    # Another actor's words are never found; a query without words says why.
    page.goto("/ui/search?q=bob-private")
    expect(page.get_by_test_id("search-empty")).to_be_visible()
    # (Fetched beside the page: Chromium logs a 422 document as a console error.)
    refused = page.request.get("/ui/search?q=-only")
    assert refused.status == 422
    assert "no words" in refused.text()


async def _key(url: str, actor: str) -> str:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        return (await ApiKeyStore(get_session_factory(engine)).create_key(actor)).secret
    finally:
        await engine.dispose()


TRACEBACK = (
    "Traceback (most recent call last):\n"
    + '  File "agent.py", line 1\n' * 60
    + ("ValueError: the tool returned nothing")
)


def test_run_page_estimates_durations_folds_json_and_errors(page: Page, live: Live) -> None:
    """The README tour's run (steps sent with a duration only, longer than the run) and
    what a call was paid for, as a newcomer reads them."""
    carol = _blocking(_key(live.url, "carol"))
    auth = {"Authorization": f"Bearer {carol}"}
    with httpx.Client(base_url=live.base, headers=auth) as api:
        run = api.post(
            "/runs",
            json={
                "name": "tour-agent",
                "status": "succeeded",
                "started_at": "2026-01-01T12:00:00Z",
                "completed_at": "2026-01-01T12:00:00.107Z",
            },
        ).json()
        steps = [
            {"step_index": 0, "name": "plan", "duration_ms": 120, "metadata": {"k": {"n": 1}}},
            {
                "step_index": 1,
                "name": "search",
                "duration_ms": 850,
                "status": "failed",
                "error": TRACEBACK,
            },
        ]
        assert api.post(f"/runs/{run['id']}/steps", json=steps).status_code == 201
        call = {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "prompt_tokens": 1000,
            "cached_tokens": 400,
            "completion_tokens": 100,
            "reasoning_tokens": 30,
        }
        assert api.post(f"/runs/{run['id']}/llm-calls", json=call).status_code == 201
    sign_in(page, carol)
    page.goto(f"/ui/runs/{run['id']}")
    waterfall = page.get_by_test_id("waterfall")
    # Both steps drawn, dashed as estimated, one after the other.
    bars = waterfall.locator("svg rect.estimated")
    expect(bars).to_have_count(2)
    first_x = float(bars.nth(0).get_attribute("x") or "nan")
    second_x = float(bars.nth(1).get_attribute("x") or "nan")
    assert first_x < second_x
    expect(page.get_by_test_id("estimated-note")).to_be_visible()
    expect(page.get_by_test_id("outlast")).to_contain_text("970 ms")
    expect(page.get_by_test_id("outlast")).to_contain_text("107 ms")
    # The traceback folded to its last line; the rest on click.
    search = waterfall.locator("details.step").filter(has_text="search")
    search.locator("summary").first.click()
    fold = search.get_by_test_id("error-fold")
    expect(fold.locator("summary")).to_contain_text("ValueError: the tool returned nothing")
    expect(fold.locator("pre")).to_be_hidden()
    fold.locator("summary").click()
    expect(fold.locator("pre")).to_contain_text('File "agent.py"')
    # Metadata pretty-printed and folded.
    plan = waterfall.locator("details.step").filter(has_text="plan")
    plan.locator("summary").first.click()
    metadata = plan.get_by_test_id("step-metadata")
    expect(metadata.locator("pre")).to_be_hidden()
    metadata.locator("summary").click()
    expect(metadata.locator("pre")).to_contain_text('"k": {\n    "n": 1\n  }')
    # What the call was paid for.
    calls = page.get_by_test_id("llm-calls")
    expect(calls.get_by_test_id("cached-tokens")).to_contain_text("400")
    expect(calls.get_by_test_id("reasoning-tokens")).to_contain_text("30")
    expect(calls.get_by_test_id("cost-source")).to_contain_text("price table")
    expect(calls.get_by_test_id("cost-source")).to_contain_text("genai-prices")


def test_feedback_on_a_run_page_shows_in_the_runs_list(page: Page, live: Live) -> None:
    """Thumbs down, a comment and a configured score, left on a run's page, then seen on
    the page and in the runs list."""
    headers = {"Authorization": f"Bearer {live.sample.alice_key}"}
    config = {"name": "accuracy", "data_type": "numeric", "min_value": 0, "max_value": 1}
    made = httpx.post(f"{live.base}/score-configs", json=config, headers=headers)
    assert made.status_code in (200, 201), made.text
    sign_in(page, live.sample.alice_key)
    page.goto(f"/ui/runs/{live.sample.failed_run}")
    form = page.get_by_test_id("feedback")
    form.get_by_label("Comment").fill("cited the wrong paper")
    form.get_by_label("accuracy").fill("0.25")
    form.get_by_role("button", name="Bad").click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{live.sample.failed_run}#scores$"))
    table = page.get_by_test_id("scores").locator("table.scores tbody tr")
    expect(table).to_have_count(2)
    expect(page.get_by_test_id("scores")).to_contain_text("cited the wrong paper")

    page.goto("/ui/runs?status=failed")
    row = page.locator("table.runs tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.scores")).to_contain_text("👎")
    expect(row.locator("td.scores")).to_contain_text("accuracy 0.25")
    page.goto("/ui/runs?status=succeeded")
    expect(page.locator("td.scores .score-chip")).to_have_count(0)
