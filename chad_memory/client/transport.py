"""How both clients send a `Call`: auth header, retries with backoff, errors as exceptions.

Retried: answers 502/503/504 (the service or a proxy says "not now"; the service's 503
means nothing was written) and failures to connect (nothing was sent). Never retried: a
connection lost after the request went out, since the write may have landed; POST /runs
with an idempotency key is safe to repeat by hand, other writes are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from chad_memory.client.calls import RETRY_STATUSES, Call, error_for, retry_after
from chad_memory.errors import ServiceUnreachableError

# Errors where the request cannot have reached the service.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` more attempts after the first; waits grow `backoff` * 2**n up to `cap`
    seconds, or follow the server's Retry-After (also capped)."""

    retries: int = 3
    backoff: float = 0.25
    cap: float = 8.0

    def wait(self, attempt: int) -> float:
        return float(min(self.backoff * 2**attempt, self.cap))


def client_options(
    base_url: str, api_key: str | None, timeout: float, headers: dict[str, str] | None
) -> dict[str, Any]:
    merged = {"User-Agent": "chad-memory-client", **(headers or {})}
    if api_key is not None:
        merged["Authorization"] = f"Bearer {api_key}"
    return {"base_url": base_url.rstrip("/"), "timeout": timeout, "headers": merged}


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    return http.build_request(
        call.method, call.path, params=call.params, json=call.json, headers=call.headers
    )


def should_retry(response: httpx.Response, attempt: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before retrying this answer, or None to keep it."""
    if response.status_code in RETRY_STATUSES and attempt < policy.retries:
        return retry_after(response, policy.wait(attempt), policy.cap)
    return None


def unreachable(call: Call[Any], exc: httpx.TransportError) -> ServiceUnreachableError:
    return ServiceUnreachableError(f"{call.method} {call.path}: service unreachable ({exc})")


def finish(call: Call[Any], response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_for(response)
    return call.read(response)
