"""LangGraph long-term memory (`BaseStore`) on chad-memory's tables.

`ChadMemoryStore(session_factory, actor=..., index=..., ttl=...)` is a
`langgraph.store.base.BaseStore`: pass it to `StateGraph.compile(store=...)` and nodes
read and write memories with `store.aput/aget/asearch`. Items live in `store_items`
(revision 008), one row per (actor, namespace, key); their vectors are rows of
`embeddings`, so search uses the vector index, binary codec and exact-or-index planning of
`PgVectorStore`. Two stores with different actors never see each other's items.

As in LangGraph's stores, an expired item is read until the sweep deletes it unless the
TTL config sets `omit_expired`; a refresh on read extends only live items, and never waits
for a row another transaction holds (so concurrent reads cannot deadlock). Calls made
at once on one event loop run as one batch; the sync methods may be called from any
number of threads at once.

Where LangGraph's own Postgres store is wrong we differ, on purpose:
- `$gt/$gte/$lt/$lte` compare numbers as numbers and strings as strings (LangGraph's
  compares the text, so "10" < "9"); a value of another type never matches.
- `$ne` matches items that lack the key (as LangGraph's InMemoryStore does).
- `index=False` on an existing item drops its old vectors (LangGraph's keeps them, so a
  search can find the item by text it no longer holds).
"""

from chad_memory.integrations.langgraph.statements import VECTOR_SOURCE
from chad_memory.integrations.langgraph.store import ChadMemoryStore
from chad_memory.integrations.langgraph.ttl import sweep_expired_items

__all__ = ["VECTOR_SOURCE", "ChadMemoryStore", "sweep_expired_items"]
