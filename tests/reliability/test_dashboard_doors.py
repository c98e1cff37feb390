"""Round three (issue 22), the dashboard's doors: what a planted cookie, an edge date, a
tool call in another vendor's shape and a copied cookie get. In-process over httpx; what
Chromium sees of the same is in test_dashboard_browser.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps.core_api.ui.session import COOKIE
from chad_memory import ApiKeyStore, MessageCreate, ThreadCreate, ThreadStore
from chad_memory.models import DashboardSignOut
from tests.ui.conftest import Dashboard, csrf_of

NON_ASCII = ("é", "日本", "\u00ff" * 40, "x.é", "é.é")


def _raw_cookie(value: str) -> dict[bytes, bytes]:
    # Sent as the bytes a browser sends (UTF-8); httpx would refuse a str header value.
    return {b"Cookie": f"chad_session={value}".encode()}


async def test_a_non_ascii_session_cookie_reads_as_no_session(dash: Dashboard) -> None:
    """Class 5: every /ui page answered 500 to such a cookie, sign-in included."""
    for value in NON_ASCII:
        dash.client.cookies.clear()
        headers = _raw_cookie(value)
        login = await dash.client.get("/ui/login", headers=headers)
        assert login.status_code == 200, value
        assert 'name="csrf"' in login.text
        runs = await dash.client.get("/ui/runs", headers=headers)
        assert runs.status_code == 303, value
        assert runs.headers["location"] == "/ui/login"
        form = await dash.client.post(
            "/ui/login", headers=headers, data={"api_key": "k", "csrf": "c"}
        )
        assert form.status_code == 403, value
    # The fresh cookie the sign-in page set replaces the planted one: signing in works.
    dash.client.cookies.clear()
    assert (await dash.sign_in(dash.sample.alice_key)).status_code == 303
    assert (await dash.client.get("/ui/runs")).status_code == 200


async def test_a_non_ascii_csrf_field_is_refused_not_a_failure(dash: Dashboard) -> None:
    """Class 5: a non-ASCII CSRF field on sign-in and sign-out answered 500."""
    form = await dash.client.get("/ui/login")
    for token in ("é", "日本" * 30, csrf_of(form.text)[:-1] + "é"):
        answer = await dash.client.post(
            "/ui/login", data={"api_key": dash.sample.alice_key, "csrf": token}
        )
        assert answer.status_code == 403
        assert "expired or came from another site" in answer.text
    await dash.sign_in(dash.sample.alice_key)
    out = await dash.client.post("/ui/logout", data={"csrf": "é"})
    assert out.status_code == 403
    assert "Invalid or missing form token" in out.text
    assert (await dash.client.get("/ui/runs")).status_code == 200


async def test_edge_dates_in_the_runs_filter_are_422(dash: Dashboard) -> None:
    """Class 6: `to=9999-12-31` answered 500 (the day after it overflows `datetime`)."""
    await dash.sign_in(dash.sample.alice_key)
    for params in (
        {"to": "9999-12-31"},
        {"from": "9999-12-31", "to": "9999-12-31"},
        {"to": "9999-12-31T23:59:59.999999+00:00"},
        {"from": "0001-01-01"},
        {"from": "0001-01-01T00:00:00+01:00"},
    ):
        page = await dash.client.get("/ui/runs", params=params)
        assert page.status_code == 422, params
        assert "range" in page.text, params
    fine = await dash.client.get("/ui/runs", params={"from": "2000-01-01", "to": "9999-12-30"})
    assert fine.status_code == 200
    assert "support-agent" in fine.text


async def test_tool_calls_in_any_shape_show_on_the_conversation_page(
    dash: Dashboard, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Class 7: OpenAI-shaped tool calls (the name under `function`) answered 500."""
    thread_store = ThreadStore(session_factory)
    thread = await thread_store.create_thread(
        ThreadCreate(agent_type="chat", title="tools"), actor="alice"
    )
    openai_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order": 4411}'},
    }
    odd_calls = [
        {"function": "not an object"},
        {"name": 7},
        {"name": None, "function": {"name": ["x"]}},
        {},
    ]
    await thread_store.add_message(
        thread.id,
        MessageCreate(role="assistant", content="", tool_calls=[openai_call, *odd_calls]),
        actor="alice",
    )
    await thread_store.add_message(
        thread.id,
        MessageCreate(role="assistant", tool_calls=[{"name": "search_docs", "args": {}}]),
        actor="alice",
    )
    await dash.sign_in(dash.sample.alice_key)
    page = await dash.client.get(f"/ui/threads/{thread.id}")
    assert page.status_code == 200
    assert "tool call: lookup_order" in page.text
    assert "tool call: search_docs" in page.text
    assert page.text.count("<summary>tool call</summary>") == len(odd_calls)
    assert "call_1" in page.text


async def test_sign_out_ends_every_copy_of_the_session(dash: Dashboard) -> None:
    """Class 14: a cookie copied before sign-out kept opening pages until it expired."""
    await dash.sign_in(dash.sample.alice_key)
    copied = dash.client.cookies.get(COOKIE)
    assert copied
    token = csrf_of((await dash.client.get("/ui/runs")).text)
    assert (await dash.client.post("/ui/logout", data={"csrf": token})).status_code == 303

    dash.client.cookies.clear()
    dash.client.cookies.set(COOKIE, copied, path="/ui")
    for path in ("/ui/runs", f"/ui/runs/{dash.sample.support_run}", "/ui/threads", "/ui/usage"):
        page = await dash.client.get(path)
        assert page.status_code == 303, path
        assert page.headers["location"].startswith("/ui/login")
    # Signing out that copy again is harmless, and signing in anew works.
    assert (await dash.client.post("/ui/logout", data={"csrf": token})).status_code == 303
    dash.client.cookies.clear()
    await dash.sign_in(dash.sample.alice_key)
    assert (await dash.client.get("/ui/runs")).status_code == 200


async def test_the_library_refuses_a_signed_out_session(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    keys = ApiKeyStore(session_factory)
    made = await keys.create_key("alice")
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await keys.get_live_key(made.key.id, session_id="s1") is not None
    await keys.sign_out("s1", expires_at=later)
    await keys.sign_out("old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await keys.get_live_key(made.key.id, session_id="s1") is None
    assert await keys.get_live_key(made.key.id, session_id="s2") is not None
    assert await keys.get_live_key(made.key.id) is not None
    await keys.sign_out("s3", expires_at=later)  # and the expired sign-out is gone
    async with session_factory() as session:
        left = set((await session.scalars(select(DashboardSignOut.sid))).all())
    assert left == {"s1", "s3"}
