"""Full-text search across runs, steps, LLM calls, threads, messages and memory.

Hits come newest first, keyset-paged like every other list (`stores/paging.py`): a
relevance order would have to score every match before returning the first page, while
newest first lets PostgreSQL stop at the page's end, whether it reads the text index
(rare words) or walks a kind's rows by time and checks each (common ones). Relevance
ranking is what memory's hybrid search does (`PgVectorStore.hybrid_search`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from chad_memory.schemas import Page, SearchFilter, TextHit
from chad_memory.stores.base import Store
from chad_memory.stores.paging import keyset_values, page_of
from chad_memory.stores.search_kinds import MARK_END, MARK_START, SEARCH, search_statement
from chad_memory.stores.transactions import retried, transaction
from chad_memory.text_search import query_cjk_terms, tsquery_text
from chad_memory.validation import check_actor

# Planned for each search's own words: a generic plan cannot tell a word in every row
# from one in three.
_CUSTOM_PLAN = text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")


_JOINERS = {"", "_", "-", ".", "/", ":"}


def highlighted(marked: str, cjk_terms: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The snippet without its marks, and the [start, end) offsets the marks enclosed.

    ts_headline marks whole words, and to it a CJK run is one word: the CJK terms of the
    query are found in the plain text here instead.
    """
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    start = 0
    length = 0
    for ch in marked:
        if ch == MARK_START:
            start = length
        elif ch == MARK_END:
            spans.append((start, length))
        else:
            plain.append(ch)
            length += 1
    snippet = "".join(plain)
    for term in cjk_terms:
        at = snippet.find(term)
        while at >= 0:
            end = at + len(term)
            if not any(s < end and at < e for s, e in spans):
                spans.append((at, end))
            at = snippet.find(term, end)
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        # `get_weather` and `order-4411` are marked as two words: one identifier.
        if merged and snippet[merged[-1][1] : s] in _JOINERS:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return snippet, merged


class SearchStore(Store):
    """Search an actor's data by its words. Every method is one transaction."""

    @retried
    async def search(
        self,
        q: str,
        *,
        actor: str,
        filters: SearchFilter | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[TextHit]:
        """The actor's rows matching `q`, newest first (syntax: `chad_memory.text_search`).

        InvalidInputError for a query with nothing to search for, a bad cursor, or
        filters that apply to none of the kinds asked for.
        """
        filters = filters or SearchFilter()
        tsq = tsquery_text(q)
        values: dict[str, Any] = keyset_values(
            SEARCH, self._cursors, limit=limit, cursor=cursor, offset=0
        )
        stmt = search_statement(filters, check_actor(actor), after=cursor is not None)
        values["tsq"] = tsq
        cjk = query_cjk_terms(q)
        async with transaction(self._db, "search") as session:
            await session.execute(_CUSTOM_PLAN)
            rows = (await session.execute(stmt, values)).mappings().all()
        items = []
        for row in rows:
            snippet, spans = highlighted(row["snippet"] or "", cjk)
            items.append(TextHit.model_validate(dict(row, snippet=snippet, highlights=spans)))
        return page_of(items, SEARCH, self._cursors, limit)
