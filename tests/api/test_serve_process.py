"""The real `chad-memory serve` process, over real HTTP on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import ApiKeyStore
from tests.api.conftest import bearer

CLI = Path(sys.executable).parent / "chad-memory"
ROOT = Path(__file__).resolve().parents[2]


def readme_tour() -> str:
    """The README's service tour, as a newcomer would paste it after `make serve`."""
    section = (ROOT / "README.md").read_text().split("## Service tour", 1)[1]
    blocks: list[str] = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(blocks) == 2, "README's tour lost its `make serve` or its curl block"
    assert blocks[0].strip() == "make serve"
    # The venv that runs these tests stands in for the checkout's .venv.
    return blocks[1].replace(".venv/bin/", f"{Path(sys.executable).parent}/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_process_answers_over_http(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "info"}
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, "serve exited early"
                try:
                    health = await client.get("/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not start listening"
                    await asyncio.sleep(0.2)
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
            env={**env, "PORT": str(port)},
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
        assert '"cost_usd":"0.00036000"' in shown
        assert shown.strip().splitlines()[-1].endswith('belongs to another actor"}')
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    log = out.decode()
    # SIGTERM is a clean stop: graceful shutdown, then exit 0 (so atexit hooks run).
    assert proc.returncode == 0, log
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
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "warning"}
    env.pop("CURSOR_SECRET", None)
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        *("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.returncode is None, "serve exited early"
            try:
                async with httpx.AsyncClient(timeout=10) as probe:
                    if (await probe.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start listening"
            await asyncio.sleep(0.3)
        url = f"http://127.0.0.1:{port}/runs"
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
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), timeout=30)
