"""asyncpg-level plumbing of ChadMemoryStore: positional parameters, vector arguments,
the fetch helpers and the rows they return turned into LangGraph `Item`s.

Separate from the store class because the filters build parameters with it too, and
because it is the one place that knows how the driver takes and hands back values.
"""

from __future__ import annotations

import json
from typing import Any

from langgraph.store.base import Item, SearchItem

from chad_memory.stores.transactions import SessionFactory, driver_read, driver_transaction


class _Params:
    """Positional parameters for asyncpg: `add` returns the placeholder for a value."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class _VectorArg:
    """A vector inside a `vector[]` parameter: not iterable, so asyncpg does not take it
    for a nested array; chad_memory.vector_codec's encoder reads it through `tolist`."""

    __slots__ = ("values",)

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def tolist(self) -> list[float]:
        return self.values


def _loads(value: Any) -> Any:
    # SQLAlchemy's jsonb codec on these connections hands back the JSON text.
    return json.loads(value) if isinstance(value, str) else value


def _item(row: Any) -> Item:
    return Item(
        namespace=tuple(row["prefix"].split(".")),
        key=row["key"],
        value=_loads(row["value"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _search_item(row: Any) -> SearchItem:
    score = row["score"]
    return SearchItem(
        namespace=tuple(row["prefix"].split(".")),
        key=row["key"],
        value=_loads(row["value"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        score=None if score is None else float(score),
    )


async def _fetch(sessions: SessionFactory, what: str, sql: str, *args: Any) -> list[Any]:
    """One statement on a pooled asyncpg connection, in autocommit: a read (a refresh of
    expiry on read included: one statement is atomic, and running it again is harmless)."""
    async with driver_read(sessions, what) as driver:
        rows: list[Any] = await driver.fetch(sql, *args)
    return rows


async def _write(sessions: SessionFactory, what: str, sql: str, *args: Any) -> list[Any]:
    """One writing statement on a pooled asyncpg connection, inside BEGIN ... COMMIT."""
    async with driver_transaction(sessions, what) as driver:
        rows: list[Any] = await driver.fetch(sql, *args)
    return rows
