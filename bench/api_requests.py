"""Request latency of a running chad-memory service, as a client sees it over HTTP.

    .venv/bin/python bench/api_requests.py --url http://127.0.0.1:8000 --key cm_... [--runs 500]

Sequential requests on one keep-alive connection (no concurrency): POST /runs, POST of
two steps and an LLM call per run, GET /runs pages (offset and a full cursor walk),
GET /runs/{id}/stats. Prints p50 / p95 / max in milliseconds and requests per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import httpx


def timed(
    samples: list[float], client: httpx.Client, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    samples.append((time.perf_counter() - started) * 1000)
    response.raise_for_status()
    return response


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    rate = 1000 * len(samples) / sum(samples)
    print(
        f"{name:<28} n={len(samples):<5} p50={statistics.median(ordered):7.2f} ms  "
        f"p95={p95:7.2f} ms  max={ordered[-1]:7.2f} ms  {rate:7.1f} req/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {args.key}"}
    results: dict[str, list[float]] = {
        k: [] for k in ("POST /runs", "POST steps+llm-call", "GET /runs limit=50", "GET stats")
    }
    walk: list[float] = []
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
        ids: list[str] = []
        for i in range(args.runs):
            body = {"name": f"run-{i}", "tags": [tag], "request_payload": {"i": i}}
            run = timed(results["POST /runs"], client, "POST", "/runs", json=body)
            ids.append(run.json()["id"])
        for rid in ids[:100]:
            steps = [{"step_index": 0, "duration_ms": 10}, {"step_index": 1, "duration_ms": 20}]
            call = {"model": "m", "prompt_tokens": 10, "cost_usd": "0.001", "latency_ms": 5}
            timed(results["POST steps+llm-call"], client, "POST", f"/runs/{rid}/steps", json=steps)
            timed(
                results["POST steps+llm-call"], client, "POST", f"/runs/{rid}/llm-calls", json=call
            )
        for i in range(100):
            params = {"tag": tag, "limit": 50, "offset": (i * 50) % args.runs}
            timed(results["GET /runs limit=50"], client, "GET", "/runs", params=params)
        for rid in ids[:100]:
            timed(results["GET stats"], client, "GET", f"/runs/{rid}/stats")
        cursor: str | None = None
        seen = 0
        while True:
            params = {"tag": tag, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = timed(walk, client, "GET", "/runs", params=params).json()
            seen += len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    for name, samples in results.items():
        report(name, samples)
    report("GET /runs cursor walk 200", walk)
    print(f"cursor walk saw {seen} of {args.runs} runs")


if __name__ == "__main__":
    main()
