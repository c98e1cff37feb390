"""/memory: embeddings, always scoped to the caller.

The actor comes from the API key and is passed to every store call, so a search never
sees, and a delete never touches, another actor's rows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from apps.core_api.answers import JsonAnswer, answer
from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import (
    AUTH_RESPONSES,
    MemoryAddBody,
    MemoryAdded,
    MemoryDeleted,
    MemorySearchBody,
    MemorySearchResult,
    Problem,
)

router = APIRouter(
    prefix="/memory",
    tags=["memory"],
    responses={
        **AUTH_RESPONSES,
        422: {"model": Problem, "description": "invalid body (e.g. wrong embedding length)"},
    },
)


@router.post(
    "",
    status_code=201,
    response_model=MemoryAdded,
    responses={403: {"model": Problem}, 404: {"model": Problem}},
)
async def add_memory(body: MemoryAddBody, caller: CurrentCaller) -> MemoryAdded:
    """Store a batch (all or nothing); a `run_id` must name one of the caller's runs."""
    await caller.runs.check_owner(
        [i.run_id for i in body.items if i.run_id is not None], actor=caller.actor
    )
    records = await caller.vectors.add_embeddings(
        [item.to_create(caller.actor) for item in body.items]
    )
    return MemoryAdded(items=records)


@router.post("/search", response_model=MemorySearchResult)
async def search_memory(body: MemorySearchBody, caller: CurrentCaller) -> JsonAnswer:
    """The caller's k nearest embeddings by cosine similarity, best first; with a
    `query`, its keyword ranking fused with the vector's (or alone, without one)."""
    if body.query is not None:
        fused = await caller.read_vectors.hybrid_search(
            body.query,
            body.embedding,
            k=body.k,
            actor=caller.actor,
            namespace=body.namespace,
            source_id=body.source_id,
            metadata=body.metadata,
        )
        return answer(MemorySearchResult.model_construct(items=fused))
    assert body.embedding is not None  # the body's validator: one of the two is given
    hits = await caller.read_vectors.search(
        body.embedding,
        k=body.k,
        actor=caller.actor,
        namespace=body.namespace,
        source_id=body.source_id,
        metadata=body.metadata,
        min_score=body.min_score,
    )
    return answer(MemorySearchResult.model_construct(items=hits))


@router.delete("", response_model=MemoryDeleted)
async def delete_memory(
    source_id: Annotated[str, Query(min_length=1, max_length=512)],
    caller: CurrentCaller,
) -> MemoryDeleted:
    """Delete the caller's embeddings of one source; answers how many went."""
    return MemoryDeleted(
        deleted=await caller.vectors.delete_by_source(source_id, actor=caller.actor)
    )
