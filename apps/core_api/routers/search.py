"""GET /search: the caller's runs, steps, LLM calls, threads, messages and memory by
their words. The rules (syntax, kinds, filters, paging) are the library's
(`chad_memory.stores.search`); this route only reads the query string.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import ConfigDict, Field

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import AUTH_RESPONSES, MetadataParam
from chad_memory.schemas import Page, SearchFilter, TextHit
from chad_memory.text_search import MAX_QUERY_CHARS

router = APIRouter(tags=["search"], responses=AUTH_RESPONSES)


class SearchQuery(SearchFilter):
    """GET /search query: the words, every search filter, and paging. Unknown parameters
    are refused (none can widen past the caller)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    q: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description='words (all must appear), "a phrase", -excluded, a OR b, prefix*',
    )
    metadata: MetadataParam | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: Annotated[str, Field(min_length=1, max_length=512)] | None = None

    def to_filter(self) -> SearchFilter:
        return SearchFilter.model_construct(
            **{name: getattr(self, name) for name in SearchFilter.model_fields}
        )


@router.get("/search", response_model=Page[TextHit])
async def search(query: Annotated[SearchQuery, Query()], caller: CurrentCaller) -> Page[TextHit]:
    """Hits newest first, each with its kind, id, run / thread and a highlighted snippet."""
    return await caller.stores.search.search(
        query.q,
        actor=caller.actor,
        filters=query.to_filter(),
        limit=query.limit,
        cursor=query.cursor,
    )
