"""`make screenshots`: every dashboard page, with the sample data, as PNGs for the README.

Runs on a throwaway database (TEST_DATABASE_URL's server, else a temporary embedded one),
a real `chad-memory serve` and the system Chromium, as the browser tests do.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from playwright.sync_api import Page

from chad_memory.database import create_engine, get_session_factory
from chad_memory.migrations import upgrade
from tests.database import run_admin, server_url, unique_name, with_database
from tests.ui.live import chromium, serve
from tests.ui.sample import Sample, seed

WIDTH, HEIGHT = 1280, 800


async def _prepare(admin_url: str) -> tuple[str, Sample]:
    name = unique_name("chad_screens")
    await run_admin(admin_url, f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url, pool_size=2, max_overflow=0)
    try:
        return url, await seed(get_session_factory(engine))
    finally:
        await engine.dispose()


def _shoot(page: Page, out: Path, name: str, *, full: bool = False) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with server_url() as (admin_url, _origin):
        url, sample = asyncio.run(_prepare(admin_url))
        try:
            with serve(url) as base, chromium() as browser:
                context = browser.new_context(
                    base_url=base, viewport={"width": WIDTH, "height": HEIGHT}
                )
                page = context.new_page()
                page.goto("/ui/login")
                _shoot(page, out, "1-sign-in")
                page.get_by_label("API key").fill(sample.alice_key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/ui/runs")
                _shoot(page, out, "2-runs")
                page.goto(f"/ui/runs/{sample.support_run}")
                page.locator("details.step", has_text="search_orders").locator(
                    "summary .name", has_text="search_orders"
                ).click()
                _shoot(page, out, "3-run", full=True)
                page.goto("/ui/usage")
                page.wait_for_selector("[data-chart][data-ready] canvas")
                _shoot(page, out, "4-usage", full=True)
                page.goto(f"/ui/threads/{sample.thread}")
                _shoot(page, out, "5-conversation")
                page.goto("/ui/memory")
                _shoot(page, out, "6-memory")
                page.goto(f"/ui/memory/{sample.embedding}")
                _shoot(page, out, "7-more-like-this")
                page.goto(f"/ui/runs/{sample.bob_run}")
                _shoot(page, out, "8-forbidden")
                context.close()
        finally:
            asyncio.run(
                run_admin(
                    admin_url, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'
                )
            )


if __name__ == "__main__":
    main()
