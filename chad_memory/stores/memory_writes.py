"""Writing memories: text embedded before any SQL, one row per text in a namespace.

Separate from the vector store because it is the one place that turns a batch of
`EmbeddingCreate` into rows: vectors the caller sent are checked, missing ones come from
the embedder (all of them before the transaction opens, so an embedder outage writes
nothing), and rows with `content` carry its sha256 so that re-adding a text refreshes
its row (revision 011's unique index) instead of adding a twin.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import ReturningInsert

from chad_memory.embedders import Embedder, fit_dimension
from chad_memory.errors import InvalidInputError
from chad_memory.schemas import EmbeddingCreate, EmbeddingRecord
from chad_memory.validation import check_embedding

# Rows the LangGraph store writes may share a text (two items, one sentence): never merged.
UNMERGED_SOURCE_TYPES = frozenset({"langgraph_store"})
# What a re-added text replaces in its row; id, actor, namespace, content and created_at stay.
REFRESHED = ("embedding", "metadata", "source_type", "source_id", "run_id", "step_id", "key")
# Revision 012's one-row-per-text index: current rows only.
CURRENT_TEXT = "content_hash IS NOT NULL AND valid_to IS NULL"
# A keyed memory closes its key's current version (unless that version is the same text,
# which the write then refreshes; a memory without content always closes it); valid_to
# is the transaction's now(), the new row's valid_from.
CLOSE_SUPERSEDED = text(
    """
    UPDATE embeddings e SET valid_to = now()
    FROM unnest(CAST(:actors AS text[]), CAST(:namespaces AS text[]), CAST(:keys AS text[]),
                CAST(:hashes AS bytea[])) AS k(actor, namespace, key, hash)
    WHERE e.actor = k.actor AND e.namespace = k.namespace AND e.key = k.key
      AND e.valid_to IS NULL AND (k.hash IS NULL OR e.content_hash IS DISTINCT FROM k.hash)
    """
)
# Columns a write answers with: the vector and the hash stay in the database.
UNRETURNED = frozenset({"embedding", "content_hash"})


def no_embedder_error(where: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where} has no `embedding` and no embedder is configured (EMBEDDER=none): "
        "send the vector, or set EMBEDDER to openai or local"
    )


def content_hash(content: str) -> bytes:
    """What revision 011 computes in SQL: sha256 of the text's UTF-8 bytes."""
    return hashlib.sha256(content.encode("utf-8")).digest()


async def vectors_for(
    items: Sequence[EmbeddingCreate], embedder: Embedder | None, dim: int
) -> list[list[float]]:
    """Every item's vector in the table's dimension: the caller's, checked, or the
    embedder's for its content (one embedder call per batch of texts)."""
    vectors: list[list[float] | None] = []
    missing: list[int] = []
    for i, item in enumerate(items):
        if item.embedding is not None:
            vectors.append(check_embedding(item.embedding, dim, f"embeddings[{i}]"))
            continue
        if not item.content:
            raise InvalidInputError(f"embeddings[{i}] needs `embedding` or `content`")
        if embedder is None:
            raise no_embedder_error(f"embeddings[{i}]")
        vectors.append(None)
        missing.append(i)
    if missing:
        assert embedder is not None
        made = await embedder.embed_documents([items[i].content or "" for i in missing])
        for i, vector in zip(missing, made, strict=True):
            fitted = fit_dimension(vector, dim, embedder.name)
            vectors[i] = check_embedding(fitted, dim, f"embedder's vector for embeddings[{i}]")
    return [v for v in vectors if v is not None]


def memory_rows(
    items: Sequence[EmbeddingCreate], vectors: Sequence[list[float]]
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """(rows to write, each item's row key). Items of one batch with the same text in the
    same namespace become one row (the last one's fields win), as a re-add would."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    keys: list[tuple[Any, ...]] = []
    named: set[tuple[str, str, str]] = set()
    for i, (item, vector) in enumerate(zip(items, vectors, strict=True)):
        if item.key is not None:
            if (item.actor, item.namespace, item.key) in named:
                raise InvalidInputError(
                    f"embeddings[{i}]: key {item.key!r} appears twice in namespace "
                    f"{item.namespace!r} of this batch; send one version per key"
                )
            named.add((item.actor, item.namespace, item.key))
        data = item.model_dump(exclude={"embedding"})
        data["id"] = data["id"] or uuid.uuid4()
        data["embedding"] = vector
        merged = item.source_type not in UNMERGED_SOURCE_TYPES
        data["content_hash"] = (
            content_hash(item.content) if merged and item.content is not None else None
        )
        merged = data["content_hash"] is not None
        key: tuple[Any, ...] = (
            (item.actor, item.namespace, data["content_hash"]) if merged else (data["id"],)
        )
        if key in rows:
            data["id"] = rows[key]["id"]
        rows[key] = data
        keys.append(key)
    return list(rows.values()), keys


def upsert_statement(t: Table) -> ReturningInsert[Any]:
    """INSERT of memory rows where a text already in the namespace refreshes its row."""
    stmt = pg_insert(t)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.actor, t.c.namespace, t.c.content_hash],
        index_where=text(CURRENT_TEXT),
        set_={name: stmt.excluded[name] for name in REFRESHED},
    ).returning(*(c for c in t.c if c.name not in UNRETURNED), t.c.content_hash)


def records_in_order(
    returned: Sequence[Any], keys: Sequence[tuple[Any, ...]]
) -> list[EmbeddingRecord]:
    """The written rows in the callers' item order (a refreshed row answers with its own
    id, so rows are matched by text or id, not by position)."""
    by_key: dict[tuple[Any, ...], EmbeddingRecord] = {}
    for r in returned:
        record = EmbeddingRecord.model_validate(r)
        hashed = r["content_hash"]
        by_key[(record.actor, record.namespace, hashed) if hashed else (record.id,)] = record
    return [by_key[key] for key in keys]


def close_params(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """CLOSE_SUPERSEDED's arrays for the keyed rows of a write (None: no keyed row)."""
    keyed = [r for r in rows if r["key"] is not None]
    if not keyed:
        return None
    return {
        "actors": [r["actor"] for r in keyed],
        "namespaces": [r["namespace"] for r in keyed],
        "keys": [r["key"] for r in keyed],
        "hashes": [r["content_hash"] for r in keyed],
    }
