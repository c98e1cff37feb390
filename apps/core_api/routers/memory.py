"""/memory: embeddings, always scoped to the caller.

The actor comes from the API key and is passed to every store call, so a search never
sees, and a delete never touches, another actor's rows.
"""

from __future__ import annotations

import uuid
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
from chad_memory.schemas import MemoryDetail

router = APIRouter(
    prefix="/memory",
    tags=["memory"],
    responses={
        **AUTH_RESPONSES,
        422: {
            "model": Problem,
            "description": "invalid body (e.g. wrong embedding length, text without embedder)",
        },
    },
)


@router.post(
    "",
    status_code=201,
    response_model=MemoryAdded,
    responses={
        403: {"model": Problem},
        404: {"model": Problem},
        502: {"model": Problem, "description": "the embedder answered with an error"},
        503: {"model": Problem, "description": "the embedder is down or slow"},
    },
)
async def add_memory(body: MemoryAddBody, caller: CurrentCaller) -> MemoryAdded:
    """Store a batch (all or nothing); a `run_id` must name one of the caller's runs.

    An item without `embedding` has its `content` embedded by the configured embedder
    (422 when there is none); a text already in the namespace refreshes its row."""
    await caller.runs.check_owner(
        [i.run_id for i in body.items if i.run_id is not None], actor=caller.actor
    )
    records = await caller.vectors.add_embeddings(
        [item.to_create(caller.actor) for item in body.items]
    )
    return MemoryAdded(items=records)


@router.post(
    "/search",
    response_model=MemorySearchResult,
    responses={
        403: {"model": Problem},
        404: {"model": Problem},
        502: {"model": Problem, "description": "the embedder answered with an error"},
        503: {"model": Problem, "description": "the embedder is down or slow"},
    },
)
async def search_memory(body: MemorySearchBody, caller: CurrentCaller) -> JsonAnswer:
    """The caller's k nearest memories by cosine similarity to `embedding`, or to `query`
    text embedded by the configured embedder; best first. With `run_id` the hits are
    recorded as that run's reads (a write: it runs on the primary)."""
    vectors = caller.read_vectors if body.run_id is None else caller.vectors
    hits = await vectors.search(
        body.embedding,
        query=body.query,
        k=body.k,
        actor=caller.actor,
        namespace=body.namespace,
        source_id=body.source_id,
        metadata=body.metadata,
        min_score=body.min_score,
        run_id=body.run_id,
        step_id=body.step_id,
        as_of=body.as_of,
    )
    return answer(MemorySearchResult.model_construct(items=hits))


@router.get(
    "/{embedding_id}",
    response_model=MemoryDetail,
    responses={403: {"model": Problem}, 404: {"model": Problem}},
)
async def get_memory(
    embedding_id: uuid.UUID,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=200, description="Readers, newest first.")] = 50,
) -> MemoryDetail:
    """One memory with its provenance: the run and step that wrote it, the runs that read it."""
    return await caller.read_vectors.memory_detail(embedding_id, actor=caller.actor, limit=limit)


@router.delete("", response_model=MemoryDeleted)
async def delete_memory(
    source_id: Annotated[str, Query(min_length=1, max_length=512)],
    caller: CurrentCaller,
) -> MemoryDeleted:
    """Delete the caller's embeddings of one source; answers how many went."""
    return MemoryDeleted(
        deleted=await caller.vectors.delete_by_source(source_id, actor=caller.actor)
    )
