"""Round three (issue 22), what Chromium sees: a planted non-ASCII session cookie does
not lock the browser out (class 5), and signing out in one browser ends the session in
another that holds a copy of its cookie (class 14). A real `chad-memory serve` and the
system Chromium, as in tests/ui/test_browser.py."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, expect

from tests.ui.test_browser import Live, browser, live, sign_in  # noqa: F401  (fixtures)


def _context(browser: Browser, live: Live) -> BrowserContext:  # noqa: F811
    context = browser.new_context(base_url=live.base)
    context.set_default_timeout(10_000)
    return context


def test_a_planted_cookie_does_not_lock_the_browser_out(
    browser: Browser,  # noqa: F811
    live: Live,  # noqa: F811
) -> None:
    context = _context(browser, live)
    host = urlsplit(live.base).hostname
    assert host is not None
    # What a sibling subdomain or a script on another port of this host could plant.
    context.add_cookies(
        [{"name": "chad_session", "value": "é日本.é", "domain": host, "path": "/ui"}]
    )
    assert [c["value"] for c in context.cookies()] == ["é日本.é"]
    page = context.new_page()
    response = page.goto("/ui/login")
    assert response is not None
    assert response.status == 200
    sign_in(page, live.sample.alice_key)
    expect(page.get_by_test_id("actor")).to_have_text("alice")
    context.close()


def test_sign_out_in_one_browser_ends_a_copied_cookie_in_another(
    browser: Browser,  # noqa: F811
    live: Live,  # noqa: F811
) -> None:
    mine, thief = _context(browser, live), _context(browser, live)
    page = mine.new_page()
    sign_in(page, live.sample.alice_key)
    session = next(c for c in mine.cookies() if c["name"] == "chad_session")
    thief.add_cookies(
        [{"name": "chad_session", "value": session["value"], "url": f"{live.base}/ui"}]
    )
    stolen = thief.new_page()
    stolen.goto("/ui/threads")
    expect(stolen).to_have_url(re.compile(r"/ui/threads$"))  # the copy works while signed in

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    stolen.goto("/ui/runs")
    expect(stolen).to_have_url(re.compile(r"/ui/login"))
    expect(stolen.get_by_label("API key")).to_be_visible()
    mine.close()
    thief.close()
