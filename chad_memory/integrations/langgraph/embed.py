"""`index={"embed": "chad-memory"}`: the LangGraph store embeds with the embedder the
deployment configured (EMBEDDER), so its items and `POST /memory` texts share one model."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from chad_memory.embedders import fit_dimension
from chad_memory.errors import InvalidInputError
from chad_memory.stores.vectors import PgVectorStore

CONFIGURED = "chad-memory"


class ConfiguredEmbeddings(Embeddings):
    """LangChain's `Embeddings` over a vector store's configured embedder (async only:
    the LangGraph store always calls the `a*` methods)."""

    def __init__(self, vectors: PgVectorStore) -> None:
        if vectors.embedder is None:
            raise InvalidInputError(
                f'index embed "{CONFIGURED}" needs EMBEDDER set to openai or local'
            )
        self._vectors = vectors

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        embedder = self._vectors.embedder
        assert embedder is not None
        made = await embedder.embed_documents(texts)
        return [fit_dimension(v, self._vectors.dim, embedder.name) for v in made]

    async def aembed_query(self, text: str) -> list[float]:
        return await self._vectors.embed_query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError("the configured embedder is async: use aembed_documents")

    def embed_query(self, text: str) -> list[float]:
        raise NotImplementedError("the configured embedder is async: use aembed_query")
