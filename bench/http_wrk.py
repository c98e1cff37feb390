"""`make bench-http`: chad-memory's requests/s over real HTTP beside hand-written handlers.

Serves `chad-memory serve` (one uvicorn worker) and `bench/reference_api.py` (FastAPI +
asyncpg, one worker) on the same fresh database, then drives each route with
`wrk -t2 -c16` against one server and then the other, back to back, `--repeats` times
(alternating which goes first). The machine is shared, so the figure to read is the
ratio of each pair, not the absolute requests/s. With `--before-src PATH` (a checkout of
an older chad-memory), that code is served and measured in the same rounds too.

Routes: GET /runs?limit=50, POST /runs, GET /runs/{id}, POST /runs/{id}/steps (one
step), POST /memory/search (k=10), for an actor with 300 runs and 2,000 embeddings.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import (
    create_database,
    drop_database,
    free_port,
    load_line,
    say,
    sqlalchemy_url,
    table,
)
from chad_memory.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
WRK = shutil.which("wrk") or "/usr/bin/wrk"
SECRET = "cm_bench_" + uuid.uuid4().hex
RUNS = 300
EMBEDDINGS = 2000


@dataclass
class Route:
    label: str
    method: str
    path: str
    body: str | None = None
    # Steps need a fresh step_index per request: the Lua script numbers them.
    numbered_steps: bool = False


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    rps: dict[str, list[float]] = field(default_factory=dict)
    p50: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


async def seed(db: str, dim: int) -> dict[str, uuid.UUID]:
    """An API key for alice, 300 runs each for alice and bob, 2,000 of alice's vectors."""
    conn = await asyncpg.connect(db)
    try:
        await conn.execute(
            "INSERT INTO api_keys (id, actor, prefix, key_hash) VALUES ($1, 'alice', 'cm_ben', $2)",
            uuid.uuid4(),
            hashlib.sha256(SECRET.encode()).hexdigest(),
        )
        runs = [
            (uuid.uuid4(), actor, f"run {i}", "succeeded", json.dumps({"i": i}))
            for actor in ("alice", "bob")
            for i in range(RUNS)
        ]
        await conn.executemany(
            "INSERT INTO runs (id, actor, name, status, metadata) VALUES ($1, $2, $3, $4, $5)",
            runs,
        )
        rng = random.Random(7)
        rows = [
            (
                uuid.uuid4(),
                "alice",
                f"doc {i}",
                "[" + ",".join(f"{rng.gauss(0, 1):.5f}" for _ in range(dim)) + "]",
            )
            for i in range(EMBEDDINGS)
        ]
        await conn.executemany(
            "INSERT INTO embeddings (id, actor, content, embedding)"
            " VALUES ($1, $2, $3, $4::vector)",
            rows,
        )
        targets = {}
        for name in ("get", "steps_ours", "steps_ref", "steps_before"):
            run_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO runs (id, actor, name, status) VALUES ($1, 'alice', $2, 'running')",
                run_id,
                name,
            )
            targets[name] = run_id
        await conn.execute("ANALYZE")
        return targets
    finally:
        await conn.close()


async def build_index(url: str) -> dict[str, str]:
    """`memory reindex` on the seeded rows, as the README tells a user to after a bulk
    load: both servers then search the same calibrated index, and the reference is handed
    the setting calibration chose (`IVFFLAT_PROBES` or `EF_SEARCH`), so both do the same
    work in the database."""
    from chad_memory import PgVectorStore
    from chad_memory.database import Database

    db = Database.connect(Settings(database_url=url))
    try:
        info = await PgVectorStore(db, maintain_in_background=False).reindex()
    finally:
        await db.engine.dispose()
    assert info.calibration is not None, "the reindex did not calibrate"
    say(f"index: {info.method}, {info.calibration.setting} = {info.calibration.value}")
    env = "IVFFLAT_PROBES" if info.method == "ivfflat" else "EF_SEARCH"
    return {env: str(info.calibration.value)}


def lua_script(route: Route, path: str, base: int) -> str:
    headers = f'["Authorization"] = "Bearer {SECRET}", ["Content-Type"] = "application/json"'
    if route.numbered_steps:
        body = (
            "'{\"step_index\":' .. (base + tid * 10000000 + counter) .. "
            '\',"name":"tool","input":{"q":"hello"},"output":{"a":"world"}}\''
        )
    elif route.body is not None:
        body = _lua_string(route.body)
    else:
        body = "nil"
    return f"""
local threads = {{}}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
counter = 0
base = {base}
function request()
  counter = counter + 1
  return wrk.format("{route.method}", "{path}", {{{headers}}}, {body})
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_wrk(server: Server, route: Route, path: str, duration: int, base: int, tmp: Path) -> None:
    script = tmp / f"{uuid.uuid4().hex}.lua"
    script.write_text(lua_script(route, path, base))
    out = subprocess.run(
        [
            WRK,
            "-t2",
            "-c16",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{server.port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50_match = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50 = 0.0
    if p50_match:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50_match.group(2)]
        p50 = float(p50_match.group(1)) * scale
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors:.*", out)
    if socket_errors:
        say(f"{server.name} {route.label}: {socket_errors.group(0)}")
    server.rps.setdefault(route.label, []).append(rps)
    server.p50.setdefault(route.label, []).append(p50)
    server.errors[route.label] = server.errors.get(route.label, 0) + errors


async def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            assert server.proc is not None
            assert server.proc.poll() is None, f"{server.name} died"
            try:
                resp = await client.get(
                    f"http://127.0.0.1:{server.port}/runs?limit=1",
                    headers={"Authorization": f"Bearer {SECRET}"},
                )
                if resp.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{server.name} did not start"
            await asyncio.sleep(0.3)


def start(server: Server) -> None:
    server.port = free_port()
    argv = [a.replace("{port}", str(server.port)) for a in server.argv]
    server.proc = subprocess.Popen(
        argv,
        env=server.env,
        cwd=server.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(server: Server) -> None:
    if server.proc is not None and server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)


def chad_server(name: str, src: Path, db_url: str) -> Server:
    """`chad-memory serve` from the checkout at `src` (its code first on the path)."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "PYTHONPATH": str(src),
        # The default log level: the access log's line per request is part of the cost.
        "LOG_LEVEL": "info",
    }
    code = "import sys; from chad_memory.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", "{port}"]
    return Server(name, argv, env, src)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=int(os.environ.get("WRK_SECONDS", 8)))
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("REPEATS", 3)))
    parser.add_argument("--before-src", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--routes",
        default="",
        help="comma-separated words picking routes by label (e.g. 'search,steps'); all if empty",
    )
    args = parser.parse_args()

    dim = Settings().embedding_dim
    say(load_line())
    db = await create_database("bench_wrk")
    url = sqlalchemy_url(db)
    servers: list[Server] = []
    tmp = Path(tempfile.mkdtemp(prefix="chad-wrk-"))
    try:
        targets = await seed(db, dim)
        setting = await build_index(url)
        ours = chad_server("chad-memory", ROOT, url)
        reference_env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), **setting}
        reference = Server(
            "reference",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.reference_api:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            reference_env,
            ROOT,
        )
        servers = [ours, reference]
        if args.before_src is not None:
            servers.append(chad_server("before", args.before_src.resolve(), url))
        for server in servers:
            start(server)
        for server in servers:
            await wait_ready(server)

        rng = random.Random(11)
        query = json.dumps({"embedding": [round(rng.gauss(0, 1), 5) for _ in range(dim)], "k": 10})
        routes = [
            Route("GET /runs?limit=50", "GET", "/runs?limit=50"),
            Route("POST /runs", "POST", "/runs", json.dumps({"name": "bench", "tags": ["x"]})),
            Route("GET /runs/{id}", "GET", f"/runs/{targets['get']}"),
            Route("POST /runs/{id}/steps", "POST", "", numbered_steps=True),
            Route("POST /memory/search", "POST", "/memory/search", query),
        ]
        wanted = [w.strip().lower() for w in args.routes.split(",") if w.strip()]
        if wanted:
            routes = [r for r in routes if any(w in r.label.lower() for w in wanted)]
        step_run = {"chad-memory": "steps_ours", "reference": "steps_ref", "before": "steps_before"}
        invocation = 0
        for route in routes:
            for r in range(args.repeats):
                order = servers if r % 2 == 0 else list(reversed(servers))
                for server in order:
                    invocation += 1
                    path = route.path or f"/runs/{targets[step_run[server.name]]}/steps"
                    say(f"{route.label} on {server.name} (round {r + 1})")
                    run_wrk(server, route, path, args.duration, invocation * 30_000_000, tmp)
    finally:
        for server in servers:
            stop(server)
        shutil.rmtree(tmp, ignore_errors=True)
        await drop_database(db)

    rows = []
    results: dict[str, Any] = {}
    for route in routes:
        ratios = [
            o / r for o, r in zip(ours.rps[route.label], reference.rps[route.label], strict=True)
        ]
        row: list[Any] = [route.label]
        if args.before_src is not None:
            before = servers[2]
            before_ratios = [
                b / r
                for b, r in zip(before.rps[route.label], reference.rps[route.label], strict=True)
            ]
            row += [
                statistics.median(before.rps[route.label]),
                f"{statistics.median(before_ratios):.2f}x",
            ]
        row += [
            statistics.median(ours.rps[route.label]),
            statistics.median(reference.rps[route.label]),
            f"{statistics.median(ratios):.2f}x",
            f"{min(ratios):.2f}-{max(ratios):.2f}",
            statistics.median(ours.p50[route.label]),
            ours.errors.get(route.label, 0),
        ]
        rows.append(row)
        results[route.label] = {
            s.name: {
                "rps": s.rps[route.label],
                "p50_ms": s.p50[route.label],
                "non_2xx": s.errors.get(route.label, 0),
            }
            for s in servers
        }
    headers = ["route"]
    if args.before_src is not None:
        headers += ["before req/s", "before ratio"]
    headers += [
        "chad-memory req/s",
        "reference req/s",
        "ratio (median)",
        "ratio range",
        "chad-memory p50 ms",
        "non-2xx",
    ]
    print(
        f"### HTTP throughput, wrk -t2 -c16 -d{args.duration}s, one worker each, "
        f"{args.repeats} rounds (medians)\n"
    )
    print(table(headers, rows))
    print(f"\n{load_line()}")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
