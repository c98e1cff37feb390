"""/analytics: usage across the caller's runs (chad_memory.stores.analytics)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from apps.core_api.auth import CurrentActor
from apps.core_api.deps import RunStoreDep
from apps.core_api.schemas import AUTH_RESPONSES
from chad_memory.schemas import UsageGroupBy, UsageReport, UtcDatetime

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=AUTH_RESPONSES)


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    group_by: UsageGroupBy = "model"
    from_: UtcDatetime | None = Field(
        default=None, alias="from", description="start, inclusive (default: to - 30 days)"
    )
    to: UtcDatetime | None = Field(default=None, description="end, exclusive (default: now)")


@router.get("/usage", response_model=UsageReport)
async def usage(
    query: Annotated[UsageQuery, Query()], actor: CurrentActor, store: RunStoreDep
) -> UsageReport:
    """The caller's LLM usage per model, provider, day, hour (UTC) or run name: calls,
    runs, tokens, exact cost, latency p50/p95/p99 and error share."""
    return await store.usage(actor, group_by=query.group_by, from_=query.from_, to=query.to)
