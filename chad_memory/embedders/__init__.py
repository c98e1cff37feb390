"""Embedders: what turns memory text into vectors, configured once by the settings.

`embedder_from_settings` builds the one the deployment chose (EMBEDDER = none | openai |
local); the vector store, the service and the LangGraph store all take it from there, so
text is embedded the same way whichever door it came in by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chad_memory.errors import EmbedderFailedError, InvalidInputError
from chad_memory.settings import Settings


class Embedder(Protocol):
    """Turns texts into vectors. Documents (stored memories) and queries may be embedded
    differently (E5-style models prefix them); OpenAI-style endpoints ignore the difference.

    Raises EmbedderUnavailableError when the model cannot be reached in time and
    EmbedderFailedError when it answers with an error.
    """

    @property
    def name(self) -> str: ...

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...

    async def aclose(self) -> None: ...


def embedder_from_settings(settings: Settings) -> Embedder | None:
    """The embedder EMBEDDER names (None for `none`), built but not yet connected."""
    if settings.embedder == "none":
        return None
    if settings.embedder == "openai":
        from chad_memory.embedders.openai import OpenAIEmbedder

        if not settings.embedder_model:
            raise InvalidInputError("EMBEDDER=openai needs EMBEDDER_MODEL")
        key = settings.embedder_api_key
        return OpenAIEmbedder(
            base_url=settings.embedder_base_url,
            model=settings.embedder_model,
            api_key=key.get_secret_value() if key is not None else None,
            dimensions=settings.embedder_dimensions,
            batch_size=settings.embedder_batch_size,
            timeout_s=settings.embedder_timeout_s,
            retries=settings.embedder_retries,
        )
    from chad_memory.embedders.local import LocalEmbedder

    return LocalEmbedder(
        model=settings.embedder_model,
        dimensions=settings.embedder_dimensions,
        batch_size=settings.embedder_batch_size,
    )


def fit_dimension(vector: Sequence[float], dim: int, embedder: str) -> list[float]:
    """The embedder's vector in the table's dimension.

    A shorter vector is padded with zeros: cosine similarity, and so every score and
    ranking, is exactly that of the unpadded vectors, so a 384-d model can share a
    1536-d table. A longer one cannot be shortened without changing its meaning.
    """
    n = len(vector)
    if n == dim:
        return list(vector)
    if n == 0 or n > dim:
        raise EmbedderFailedError(
            f"embedder {embedder} returned {n}-d vectors; the embeddings table holds "
            f"{dim}-d vectors (EMBEDDING_DIM): set EMBEDDER_DIMENSIONS to at most {dim}"
        )
    return [*vector, *([0.0] * (dim - n))]


__all__ = ["Embedder", "embedder_from_settings", "fit_dimension"]
