"""A real `chad-memory serve` process for tests that talk to it over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import free_port

CLI = Path(sys.executable).parent / "chad-memory"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    base: str
    port: int
    proc: asyncio.subprocess.Process
    # What the process printed (stdout and stderr), once it has stopped; with capture.
    log: str = ""


@asynccontextmanager
async def serve(
    database_url: str,
    *,
    env: Mapping[str, str | None] | None = None,
    args: Sequence[str] = (),
    capture: bool = False,
    start_s: float = 60.0,
) -> AsyncIterator[Served]:
    """`chad-memory serve` on a free port, yielded once /health answers 200; stopped with
    SIGTERM afterwards. `env` adds variables to this process's (None removes one);
    `args` go after `serve`; with `capture` its output ends up in `Served.log` (and can
    be read from `proc.stdout` while it runs)."""
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": database_url}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    output = asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        *("serve", "--host", "127.0.0.1", "--port", str(port), *args),
        env=environment,
        stdout=output,
        stderr=asyncio.subprocess.STDOUT if capture else asyncio.subprocess.DEVNULL,
    )
    served = Served(f"http://127.0.0.1:{port}", port, proc)
    try:
        deadline = time.monotonic() + start_s
        while True:
            assert proc.returncode is None, "serve exited early"
            try:
                # A new connection each time: with --workers, any worker may answer.
                async with httpx.AsyncClient(timeout=10) as probe:
                    if (await probe.get(f"{served.base}/health")).status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            await asyncio.sleep(0.2)
        yield served
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        served.log = (out or b"").decode(errors="replace")
