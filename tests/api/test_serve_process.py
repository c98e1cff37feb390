"""The real `chad-memory serve` process, over real HTTP on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import ApiKeyStore
from tests.api.conftest import bearer
from tests.serving import ROOT, serve


def readme_tour() -> str:
    """The README's service tour, as a newcomer would paste it after `make serve`."""
    section = (ROOT / "README.md").read_text().split("## Service tour", 1)[1]
    blocks: list[str] = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(blocks) == 2, "README's tour lost its `make serve` or its curl block"
    assert blocks[0].strip() == "make serve"
    # The venv that runs these tests stands in for the checkout's .venv.
    return blocks[1].replace(".venv/bin/", f"{Path(sys.executable).parent}/")


async def test_serve_process_answers_over_http(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    async with serve(database_url, env={"LOG_LEVEL": "info"}, capture=True) as served:
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json() == {"status": "ok", "database": "ok"}

            assert (await client.get("/runs")).status_code == 401
            created = await client.post(
                "/runs", json={"name": "over-the-wire"}, headers=bearer(secret)
            )
            assert created.status_code == 201, created.text
            listed = await client.get("/runs", headers=bearer(secret))
            assert [r["name"] for r in listed.json()["items"]] == ["over-the-wire"]

        tour = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            "set -eu -o pipefail\n" + readme_tour(),
            env={**os.environ, "DATABASE_URL": database_url, "PORT": str(served.port)},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        tour_out, tour_err = await asyncio.wait_for(tour.communicate(), timeout=120)
        shown = tour_out.decode()
        assert tour.returncode == 0, tour_err.decode()[-2000:]
        assert '"total":1,"next_cursor":null' in shown
        assert '"status":"succeeded"' in shown
        assert '"total_tokens":1500' in shown
        assert '"cost_usd":"0.00036"' in shown
        assert shown.strip().splitlines()[-1].endswith('belongs to another actor"}')
    log = served.log
    # SIGTERM is a clean stop: graceful shutdown, then exit 0 (so atexit hooks run).
    assert served.proc.returncode == 0, log
    assert "Application shutdown complete" in log
    assert '"path": "/runs", "route": "/runs", "status": 201' in log
    assert '"request_id": "' in log
    assert '"actor": "alice"' in log
    assert secret not in log
    # One access line per request (ours, structured), not uvicorn's plain one as well.
    assert '"POST /runs HTTP/1.1"' not in log


async def test_serve_with_workers_shares_one_database_and_one_cursor_key(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """`serve --workers 2`: both workers answer, and a cursor issued by one is accepted
    by whichever worker the next request reaches (one CURSOR_SECRET for all)."""
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    env = {"LOG_LEVEL": "warning", "CURSOR_SECRET": None}
    async with serve(database_url, env=env, args=("--workers", "2"), start_s=90) as served:
        url = f"{served.base}/runs"
        for i in range(6):
            async with httpx.AsyncClient(timeout=10) as client:
                made = await client.post(url, json={"name": f"r{i}"}, headers=bearer(secret))
                assert made.status_code == 201, made.text
        seen: list[str] = []
        cursor = None
        for _ in range(6):
            # A new connection each time, so the pages are spread over the workers.
            async with httpx.AsyncClient(timeout=10) as client:
                params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
                page = await client.get(url, params=params, headers=bearer(secret))
                assert page.status_code == 200, page.text
                seen += [r["name"] for r in page.json()["items"]]
                cursor = page.json()["next_cursor"]
        assert seen == [f"r{i}" for i in reversed(range(6))]
