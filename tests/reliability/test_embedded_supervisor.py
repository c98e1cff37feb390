"""Issue 10 class 8: the service restarts its embedded PostgreSQL when the postmaster dies.

A real `chad-memory serve` on a throwaway data directory; the test kills its postmaster
with SIGKILL (what an OOM killer does) and waits for the service to recover by itself:
health back to 200, the data written before the kill still there, new writes accepted,
and the restart in the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chad_memory.embedded_supervisor import postmaster_pid
from tests.test_serve_embedded import _free_port


async def _wait_for_health(client: httpx.AsyncClient, want: int, within: float) -> float:
    """Seconds until GET /health answers `want`; fails after `within` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            if (await client.get("/health")).status_code == want:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"/health never answered {want} within {within}s")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path, Path]]:
    """`chad-memory serve` on its own embedded server; yields (client, data dir, log)."""
    data_dir = tmp_path / "pgdata"
    log = tmp_path / "serve.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CHAD_DATA_DIR"] = str(data_dir)
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chad_memory.cli",
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await _wait_for_health(client, 200, within=120)
            yield client, data_dir, log
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=60)
    assert not (data_dir / "postmaster.pid").exists(), "serve left PostgreSQL running"


async def _api_key(data_dir: Path) -> str:
    """A key made by the CLI, which attaches to the server `serve` started."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CHAD_DATA_DIR"] = str(data_dir)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "keys",
        "create",
        "--actor",
        "ops",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode().strip().splitlines()[-1]


async def test_killed_postmaster_is_restarted_and_the_service_recovers(
    served: tuple[httpx.AsyncClient, Path, Path],
) -> None:
    client, data_dir, log = served
    headers = {"Authorization": f"Bearer {await _api_key(data_dir)}"}
    before = await client.post("/runs", json={"name": "before the kill"}, headers=headers)
    assert before.status_code == 201, before.text
    old_pid = postmaster_pid(data_dir)
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    # Nobody restarts anything by hand: the service must come back on its own.
    recovered_in = await _wait_for_health(client, 200, within=60)
    new_pid = postmaster_pid(data_dir)
    assert new_pid is not None
    assert new_pid != old_pid
    print(f"\n[supervisor] healthy again {recovered_in:.1f}s after the kill")

    again = await client.get(f"/runs/{before.json()['id']}", headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["name"] == "before the kill"
    after = await client.post("/runs", json={"name": "after"}, headers=headers)
    assert after.status_code == 201, after.text
    # The server can answer before the supervisor has logged its success (a first pg_ctl
    # attempt may report failure while the server still comes up; the next one sees it
    # running): give the log line a few seconds to appear.
    deadline = time.monotonic() + 30
    text = log.read_text(errors="replace")
    while f"restarted (pid {new_pid})" not in text and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        text = log.read_text(errors="replace")
    assert "is not running; restarting it" in text
    assert f"restarted (pid {new_pid})" in text
