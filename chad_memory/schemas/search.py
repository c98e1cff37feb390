"""Full-text search: the filters a search takes and what each hit says."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from chad_memory.schemas.base import Input, JsonObject, Record, ShortText, UtcDatetime
from chad_memory.vocabulary import SearchKind, StepStatus


class SearchFilter(Input):
    """What narrows a search besides its words; every filter keeps only hits it applies
    to. `status` applies to runs, steps and LLM calls; `tag` to runs and to the steps and
    LLM calls of runs with that tag; `metadata` (contains, `@>`) to runs, steps, threads,
    messages and memory; `run_id` to the run, its steps, LLM calls and memory;
    `thread_id` to the thread, its messages and runs (with their steps and LLM calls);
    `namespace` to memory. A hit kind a filter does not apply to is left out, and naming
    only such kinds in `kinds` is refused."""

    # `kind=run&kind=step` in a query string.
    kinds: list[SearchKind] | None = Field(default=None, min_length=1, max_length=6, alias="kind")
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None
    status: StepStatus | None = None
    tag: ShortText | None = None
    metadata: JsonObject | None = None
    run_id: uuid.UUID | None = None
    thread_id: uuid.UUID | None = None
    namespace: ShortText | None = None


class TextHit(Record):
    """One search hit: what matched, where it belongs, and a highlighted snippet.

    `snippet` is plain text (fragments joined by " … "); `highlights` are the
    [start, end) character offsets in it of the words that matched the query.
    """

    kind: SearchKind
    id: uuid.UUID
    created_at: datetime
    run_id: uuid.UUID | None = None
    thread_id: uuid.UUID | None = None
    title: str | None = Field(
        default=None,
        description="the run or step name, the model, the thread title, the message role, "
        "or the memory namespace",
    )
    snippet: str
    highlights: list[tuple[int, int]] = Field(default_factory=list)
