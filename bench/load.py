"""Load with a database restart in the middle: is every acknowledged write still there?

Starts a throwaway embedded PostgreSQL under /tmp, migrates it, makes API keys, starts
`chad-memory serve` on a free loopback port against it, and drives it with N concurrent
asyncio httpx clients mixing writes (runs, steps, LLM calls, embeddings) and reads for a
fixed time. Halfway through, the database is stopped for a few seconds and started
again; the service is not touched. Afterwards every write that got a 2xx is looked up in
the database directly. Prints requests, answers by status, p50/p99 latency, and the
count of acknowledged writes missing (the contract says 0).

    .venv/bin/python bench/load.py --clients 100 --duration 120
    .venv/bin/python bench/load.py --clients 100 --duration 120 --pgbouncer

With --pgbouncer the service reaches the database through a real PgBouncer in transaction
mode (DB_POOLER=transaction, DIRECT_DATABASE_URL the server itself), the restart
happening behind it.

Only loopback traffic; nothing outside /tmp is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Run as a file: the repository root is where `bench` (the PgBouncer launcher) lives.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Smaller vectors than the 1536 default keep the bench about the database, not JSON.
os.environ.setdefault("EMBEDDING_DIM", "256")

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.pgbouncer import pgbouncer
from chad_memory import ApiKeyStore
from chad_memory.database import get_session_factory
from chad_memory.embedded import start_embedded_server, stop_embedded_server
from chad_memory.migrations import upgrade
from chad_memory.settings import get_settings

CLI = Path(sys.executable).parent / "chad-memory"
DIM = get_settings().embedding_dim
WRITE_RETRIES = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Acked:
    """Writes the service acknowledged with a 2xx: each must be in the database."""

    runs: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> run id
    steps: set[tuple[str, int]] = field(default_factory=set)
    llm_calls: set[str] = field(default_factory=set)
    embeddings: set[str] = field(default_factory=set)


@dataclass
class Stats:
    # (started, finished, kind, status label) of every request; classified at the end,
    # once the outage's end is known.
    requests: list[tuple[float, float, str, str]] = field(default_factory=list)
    outage: tuple[float, float] | None = None
    transport_errors: list[str] = field(default_factory=list)

    def touches_outage(self, started: float, finished: float) -> bool:
        """Whether a request was in flight between the database stopping and 5 s after it
        was back: such a request may fairly meet the outage (a 503)."""
        if self.outage is None:
            return False
        return started <= self.outage[1] + OUTAGE_GRACE_S and finished >= self.outage[0]


OUTAGE_GRACE_S = 5.0


def vector(rng: random.Random) -> list[float]:
    values = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


class Client:
    """One simulated agent: writes its own runs and their children, reads them back."""

    def __init__(
        self, http: httpx.AsyncClient, key: str, stats: Stats, acked: Acked, seed: int
    ) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}
        self.stats = stats
        self.acked = acked
        self.rng = random.Random(seed)
        self.runs: list[str] = []
        self.next_step: dict[str, int] = {}

    async def call(self, kind: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        started = time.monotonic()
        try:
            answer = await self.http.request(method, url, headers=self.headers, **kw)
            label = str(answer.status_code)
        except httpx.HTTPError as exc:
            answer, label = None, f"transport:{type(exc).__name__}"
            self.stats.transport_errors.append(f"{method} {url}: {exc!r}"[:300])
        self.stats.requests.append((started, time.monotonic(), kind, label))
        return answer

    async def write(self, kind: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        """Retry 503s and transport errors with backoff (safe: idempotent or unique-keyed)."""
        for attempt in range(WRITE_RETRIES):
            answer = await self.call(kind, method, url, **kw)
            if answer is not None and answer.status_code != 503:
                return answer
            await asyncio.sleep(0.2 * (attempt + 1) + self.rng.random() * 0.2)
        return None

    async def create_run(self) -> None:
        key = uuid.uuid4().hex
        answer = await self.write(
            "write",
            "POST",
            "/runs",
            json={"name": f"run-{self.rng.randrange(1000)}", "tags": ["load"]},
            headers_extra={"Idempotency-Key": key},
        )
        if answer is not None and answer.status_code in (200, 201):
            run_id = answer.json()["id"]
            self.acked.runs.add(run_id)
            self.acked.keys[key] = run_id
            self.runs.append(run_id)
            self.next_step[run_id] = 0

    async def add_steps(self) -> None:
        run_id = self.rng.choice(self.runs)
        first = self.next_step[run_id]
        count = self.rng.randint(1, 5)
        self.next_step[run_id] = first + count
        body = [{"step_index": first + i, "name": f"s{first + i}"} for i in range(count)]
        answer = await self.write("write", "POST", f"/runs/{run_id}/steps", json=body)
        if answer is not None and answer.status_code == 201:
            self.acked.steps.update((run_id, s["step_index"]) for s in answer.json())

    async def add_llm_call(self) -> None:
        run_id = self.rng.choice(self.runs)
        body = {
            "provider": "openai",
            "model": "gpt-x",
            "prompt_tokens": self.rng.randrange(2000),
            "completion_tokens": self.rng.randrange(500),
            "cost_usd": f"{self.rng.random() / 100:.8f}",
            "latency_ms": self.rng.random() * 2000,
        }
        # Not idempotent: never retried, so a 503 is a write the client knows it lost.
        answer = await self.call("write", "POST", f"/runs/{run_id}/llm-calls", json=body)
        if answer is not None and answer.status_code == 201:
            self.acked.llm_calls.add(answer.json()["id"])

    async def add_memory(self) -> None:
        run_id = self.rng.choice(self.runs)
        items = [
            {"embedding": vector(self.rng), "content": "chunk", "source_id": run_id}
            for _ in range(self.rng.randint(1, 3))
        ]
        answer = await self.call("write", "POST", "/memory", json={"items": items})
        if answer is not None and answer.status_code == 201:
            self.acked.embeddings.update(item["id"] for item in answer.json()["items"])

    async def read(self) -> None:
        run_id = self.rng.choice(self.runs)
        choice = self.rng.random()
        if choice < 0.3:
            await self.call("read", "GET", "/runs", params={"limit": 20})
        elif choice < 0.5:
            await self.call("read", "GET", f"/runs/{run_id}")
        elif choice < 0.7:
            await self.call("read", "GET", f"/runs/{run_id}/steps")
        elif choice < 0.85:
            await self.call("read", "GET", f"/runs/{run_id}/stats")
        else:
            body = {"embedding": vector(self.rng), "k": 5}
            await self.call("read", "POST", "/memory/search", json=body)

    async def loop(self, until: float) -> None:
        while time.monotonic() < until:
            if not self.runs or self.rng.random() < 0.1:
                await self.create_run()
                continue
            choice = self.rng.random()
            if choice < 0.25:
                await self.add_steps()
            elif choice < 0.4:
                await self.add_llm_call()
            elif choice < 0.5:
                await self.add_memory()
            else:
                await self.read()


class HeaderClient(httpx.AsyncClient):
    """`headers_extra=` merges per-call headers with the client's auth header."""

    async def request(self, method: str, url: Any, **kw: Any) -> httpx.Response:  # type: ignore[override]
        extra = kw.pop("headers_extra", None)
        if extra:
            kw["headers"] = {**(kw.get("headers") or {}), **extra}
        return await super().request(method, url, **kw)


async def restart_database(
    server: Any, stats: Stats, load_start: float, at: float, down_for: float
) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    started = time.monotonic()
    stats.outage = (started, math.inf)
    print(f"[load] stopping the database at t={started - load_start:.0f}s", flush=True)
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(down_for)
    await asyncio.to_thread(server.ensure_postgres_running)
    stats.outage = (started, time.monotonic())
    print(f"[load] database back after {time.monotonic() - started:.1f}s", flush=True)


async def verify(url: str, acked: Acked) -> dict[str, int]:
    """Look every acknowledged write up in the database itself."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            runs = {str(r[0]) for r in await conn.execute(text("SELECT id FROM runs"))}
            steps = {
                (str(r[0]), r[1])
                for r in await conn.execute(text("SELECT run_id, step_index FROM steps"))
            }
            calls = {str(r[0]) for r in await conn.execute(text("SELECT id FROM llm_calls"))}
            embs = {str(r[0]) for r in await conn.execute(text("SELECT id FROM embeddings"))}
            dup_keys = await conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT actor, idempotency_key FROM runs"
                    " WHERE idempotency_key IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d"
                )
            )
    finally:
        await engine.dispose()
    return {
        "runs_missing": len(acked.runs - runs),
        "steps_missing": len(acked.steps - steps),
        "llm_calls_missing": len(acked.llm_calls - calls),
        "embeddings_missing": len(acked.embeddings - embs),
        "idempotency_keys_with_two_runs": int(dup_keys or 0),
    }


def save(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="cm-load-"))
    data_dir = tmp / "pgdata"
    print(f"[load] embedded PostgreSQL in {data_dir}; EMBEDDING_DIM={DIM}", flush=True)
    server = start_embedded_server(data_dir, cleanup_mode="delete")
    url = "postgresql+asyncpg://" + server.get_uri("postgres").split("://", 1)[1]
    proc: asyncio.subprocess.Process | None = None
    pooler = contextlib.ExitStack()
    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_async_engine(url, poolclass=NullPool)
        keys = ApiKeyStore(get_session_factory(engine))
        secrets = [(await keys.create_key(f"actor-{i}")).secret for i in range(args.actors)]
        await engine.dispose()

        port = args.port or free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "CHAD_DATA_DIR": str(data_dir),
            "LOG_LEVEL": "warning",
            "DB_POOL_SIZE": str(args.pool_size),
        }
        if args.pgbouncer:
            pooled = pooler.enter_context(
                pgbouncer(
                    url,
                    pool_mode="transaction",
                    pool_size=args.pgbouncer_pool_size,
                    log_file=Path(args.output).with_suffix(".pgbouncer.log")
                    if args.output
                    else None,
                )
            )
            env.update(DATABASE_URL=pooled, DB_POOLER="transaction", DIRECT_DATABASE_URL=url)
            print(f"[load] through PgBouncer (transaction mode) at {pooled}", flush=True)
        proc = await asyncio.create_subprocess_exec(
            str(CLI),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(tmp / "serve.log", "wb"),  # noqa: SIM115, ASYNC230
        )
        base = f"http://127.0.0.1:{port}"
        # Drop idle connections before uvicorn's 5 s keep-alive timeout does: otherwise a
        # request sent on a connection the server is closing fails with ReadError.
        limits = httpx.Limits(
            max_connections=args.clients,
            max_keepalive_connections=args.clients,
            keepalive_expiry=2.0,
        )
        async with (
            contextlib.AsyncExitStack() as stack,
            HeaderClient(base_url=base, timeout=30, limits=limits) as http,
        ):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("serve did not come up; see " + str(tmp / "serve.log"))
                await asyncio.sleep(0.2)
            print(
                f"[load] serving on {base}; {args.clients} clients for {args.duration}s", flush=True
            )

            stats, acked = Stats(), Acked()
            # One HTTP client (and connection) per simulated client, as separate agents
            # would have: one shared pool of 100 connections made httpx's pool scan the
            # bottleneck (the load generator at 100% CPU, the service at 20%).
            one = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0)
            clients = [
                Client(
                    await stack.enter_async_context(
                        HeaderClient(base_url=base, timeout=30, limits=one)
                    ),
                    secrets[i % len(secrets)],
                    stats,
                    acked,
                    seed=i,
                )
                for i in range(args.clients)
            ]
            start = time.monotonic()
            until = start + args.duration
            await asyncio.gather(
                restart_database(server, stats, start, start + args.duration / 2, args.down_for),
                *(c.loop(until) for c in clients),
            )
            wall = time.monotonic() - start

            # The service recovered by itself: one more write and read after the load.
            after = await http.post(
                "/runs", json={"name": "after"}, headers={"Authorization": f"Bearer {secrets[0]}"}
            )
        missing = await verify(url, acked)
        log = (tmp / "serve.log").read_text(errors="replace")
        if args.output:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp / "serve.log", Path(args.output).with_suffix(".serve.log"))

        total = len(stats.requests)
        statuses: Counter[str] = Counter()
        near_outage: Counter[str] = Counter()
        latency: dict[str, list[float]] = defaultdict(list)
        for started, finished, kind, label in stats.requests:
            statuses[label] += 1
            touches = stats.touches_outage(started, finished)
            if touches:
                near_outage[label] += 1
            for name in ("all", kind) if touches else ("all", kind, "outside_outage"):
                latency[name].append(finished - started)
        report = {
            "through": "pgbouncer (transaction mode)" if args.pgbouncer else "direct",
            "clients": args.clients,
            "duration_s": round(wall, 1),
            "requests": total,
            "requests_per_s": round(total / wall, 1),
            "by_status": dict(sorted(statuses.items())),
            "by_status_in_flight_during_outage": dict(sorted(near_outage.items())),
            "5xx_outside_outage": sum(
                n for label, n in (statuses - near_outage).items() if label.startswith("5")
            ),
            "outage_s": round(stats.outage[1] - stats.outage[0], 1) if stats.outage else None,
            "latency_ms": {
                kind: {
                    "p50": round(percentile(values, 0.5), 1),
                    "p99": round(percentile(values, 0.99), 1),
                    "mean": round(statistics.fmean(values) * 1000, 1),
                }
                for kind, values in sorted(latency.items())
            },
            "acknowledged": {
                "runs": len(acked.runs),
                "steps": len(acked.steps),
                "llm_calls": len(acked.llm_calls),
                "embeddings": len(acked.embeddings),
            },
            "missing_after": missing,
            "acknowledged_writes_missing": sum(
                v for k, v in missing.items() if k.endswith("_missing")
            ),
            "write_after_load_status": after.status_code,
            # Unhandled exceptions in the service (each would have been a 500).
            "server_tracebacks_logged": log.count("Traceback"),
            "server_error_lines_logged": sum("ERROR" in line for line in log.splitlines()),
            "transport_errors_sample": stats.transport_errors[:5],
            "load_average_after": os.getloadavg()[0],
            "cpus": os.cpu_count(),
        }
        print(json.dumps(report, indent=2))
        if args.output:
            save(Path(args.output), report)
        ok = (
            report["acknowledged_writes_missing"] == 0
            and report["server_tracebacks_logged"] == 0
            and report["5xx_outside_outage"] == 0
            and missing["idempotency_keys_with_two_runs"] == 0
            and after.status_code == 201
        )
        return 0 if ok else 1
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
        pooler.close()
        stop_embedded_server(data_dir)
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--down-for", type=float, default=3.0, help="seconds the DB is down")
    parser.add_argument("--actors", type=int, default=10, help="API keys the clients share")
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="0: a free loopback port")
    parser.add_argument(
        "--pgbouncer", action="store_true", help="through PgBouncer in transaction mode"
    )
    parser.add_argument(
        "--pgbouncer-pool-size", type=int, default=20, help="PgBouncer's server connections"
    )
    parser.add_argument("--output", default=None, help="also write the JSON report here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
