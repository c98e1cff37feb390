"""An OpenAI-compatible embeddings endpoint (`POST {base}/embeddings`), over httpx.

Speaks what OpenAI, Azure OpenAI deployments, Ollama, vLLM, TEI and LM Studio all
accept. An Azure-style base URL (`https://R.openai.azure.com/openai/deployments/D
?api-version=V`) keeps its query string and sends the key as `api-key`; others send
`Authorization: Bearer`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from chad_memory.errors import EmbedderFailedError, EmbedderUnavailableError

# Statuses that mean "not now" rather than "no": retried, then answered as unavailable.
BUSY_STATUSES = frozenset({408, 429, 502, 503, 504})
MAX_RETRY_AFTER_S = 60


class OpenAIEmbedder:
    """Embeds in batches of `batch_size` texts, one request per batch, the batches of one
    call sent one after another (an endpoint that rate-limits is not helped by a burst)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 100,
        timeout_s: float = 30.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"EMBEDDER_BASE_URL must be an http(s) URL, got {base_url!r}")
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.retries = retries
        self.url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/embeddings", parts.query, "")
        )
        azure = "/openai/deployments/" in parts.path
        headers = {}
        if api_key:
            headers = {"api-key": api_key} if azure else {"Authorization": f"Bearer {api_key}"}
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport
        )
        self._host = parts.netloc

    @property
    def name(self) -> str:
        return f"openai-compatible {self.model} at {self._host}"

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._batch(texts[start : start + self.batch_size]))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self._batch([text]))[0]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _batch(self, texts: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model, "input": list(texts)}
        body["encoding_format"] = "float"
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        attempt = 0
        while True:
            try:
                response = await self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem, wait = f"embedder {self.name} timed out", 1
            except httpx.TransportError as exc:
                problem, wait = f"embedder {self.name} is unreachable: {type(exc).__name__}", 1
            else:
                if response.status_code < 300:
                    return self._vectors(response, len(texts))
                if response.status_code not in BUSY_STATUSES:
                    raise EmbedderFailedError(
                        f"embedder {self.name} answered {response.status_code}: "
                        f"{_error_text(response)}"
                    )
                problem = f"embedder {self.name} is busy ({response.status_code})"
                wait = _retry_after(response)
            if attempt >= self.retries:
                raise EmbedderUnavailableError(problem, retry_after_s=wait)
            attempt += 1
            await asyncio.sleep(min(wait, 0.1 * 2**attempt) * (0.5 + random.random()))

    def _vectors(self, response: httpx.Response, expected: int) -> list[list[float]]:
        try:
            data = response.json()["data"]
            ordered = sorted(data, key=lambda d: int(d.get("index", 0)))
            vectors = [[float(x) for x in d["embedding"]] for d in ordered]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EmbedderFailedError(
                f"embedder {self.name} answered with something that is not an embeddings "
                "list (expected {'data': [{'index': i, 'embedding': [...]}]})"
            ) from None
        if len(vectors) != expected:
            raise EmbedderFailedError(
                f"embedder {self.name} returned {len(vectors)} vectors for {expected} texts"
            )
        return vectors


def _error_text(response: httpx.Response) -> str:
    """The endpoint's own error message (OpenAI's {"error": {"message"}} or plain text)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:300]
    if isinstance(error, str):
        return error[:300]
    return str(body)[:300]


def _retry_after(response: httpx.Response) -> int:
    try:
        return max(1, min(MAX_RETRY_AFTER_S, int(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1
