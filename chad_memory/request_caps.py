"""What the HTTP service takes in one request.

The API refuses more (422), and the clients split a larger batch into requests of this
size, so both read the bounds here. The stores accept more per call
(`chad_memory.stores.limits`): these are the service's tighter ones.
"""

from __future__ import annotations

# Rows sent in one request (steps, LLM calls, artifacts, memory items, messages), and the
# largest page of a run's children: what one request wrote, one page reads back.
MAX_ITEMS_PER_REQUEST = 1_000
# Page size of the lists of runs and threads.
MAX_LIST_LIMIT = 200
# Rows skipped by `offset`; past this, page with a cursor.
MAX_OFFSET = 10_000
# Hits of one memory search.
MAX_SEARCH_K = 100
