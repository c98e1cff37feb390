"""What `GET /metrics` exposes, in the Prometheus text format.

One registry per app (not prometheus-client's global one), so two apps in one process
(tests, a worker per process) never share or double-register series. Request series are
labelled by the route's template (`/runs/{run_id}`), never the raw path, so a scrape's
size does not grow with the number of runs. Pool figures are read at scrape time from
the engine itself, so they cannot drift from what the pool really holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

# Request latency buckets (seconds): a store call is milliseconds, an outage is seconds.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INGEST_KINDS = ("runs", "steps", "llm_calls", "artifacts", "spans", "embeddings", "messages")


class _PoolCollector(Collector):
    """The engine's pool as it is at scrape time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool: Any = self.engine.pool
        for name, help_, read in (
            ("chad_db_pool_size", "Connections the pool keeps open", "size"),
            ("chad_db_pool_checked_out", "Connections in use by requests now", "checkedout"),
            ("chad_db_pool_overflow", "Connections open beyond the pool size", "overflow"),
        ):
            reader = getattr(pool, read, None)
            if reader is not None:
                yield GaugeMetricFamily(name, help_, value=max(0, int(reader())))


class ServiceMetrics:
    """The series one app exposes, and the calls that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "chad_http_requests",
            "HTTP requests answered, by route template, method and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "chad_http_request_duration_seconds",
            "Time to answer, by route template and method",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "chad_errors",
            "Library errors that reached an answer, by class (DatabaseUnavailableError, ...)",
            ("error",),
            registry=self.registry,
        )
        self.ingested = Counter(
            "chad_ingested",
            "Rows written through the service, by kind",
            ("kind",),
            registry=self.registry,
        )
        for kind in INGEST_KINDS:
            self.ingested.labels(kind)  # every kind present from the start, at 0
        self.index_stale = Gauge(
            "chad_vector_index_stale",
            "1 when the vector index was trained on far fewer rows than the table has",
            registry=self.registry,
        )
        self.index_rows = Gauge(
            "chad_vector_index_rows",
            "Rows in the embeddings table at the last index check",
            registry=self.registry,
        )
        self.index_trained_rows = Gauge(
            "chad_vector_index_trained_rows",
            "Rows the vector index was trained on",
            registry=self.registry,
        )

    def watch_pool(self, engine: AsyncEngine) -> None:
        self.registry.register(_PoolCollector(engine))

    def observe(
        self, method: str, route: str, status: int, seconds: float, error: str | None
    ) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if error is not None:
            self.errors.labels(error).inc()

    def count(self, kind: str, n: int = 1) -> None:
        if n > 0:
            self.ingested.labels(kind).inc(n)
