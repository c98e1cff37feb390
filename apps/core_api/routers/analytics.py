"""/analytics: usage across the caller's runs (chad_memory.stores.analytics)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import AUTH_RESPONSES
from chad_memory.schemas import UsageGroupBy, UsageReport, UtcDatetime

router = APIRouter(prefix="/analytics", tags=["analytics"], responses=AUTH_RESPONSES)


def _split(value: Any) -> Any:
    """`group_by=model,day` and `group_by=model&group_by=day` mean the same."""
    if isinstance(value, list):
        return [part.strip() for item in value for part in str(item).split(",")]
    return value


def _default_group() -> list[UsageGroupBy]:
    return ["model"]


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    group_by: Annotated[
        list[UsageGroupBy], BeforeValidator(_split), Field(min_length=1, max_length=2)
    ] = Field(
        default_factory=_default_group,
        description="one dimension, or two: comma-separated or repeated (model,day)",
    )
    from_: UtcDatetime | None = Field(
        default=None, alias="from", description="start, inclusive (default: to - 30 days)"
    )
    to: UtcDatetime | None = Field(default=None, description="end, exclusive (default: now)")


@router.get("/usage", response_model=UsageReport)
async def usage(query: Annotated[UsageQuery, Query()], caller: CurrentCaller) -> UsageReport:
    """The caller's LLM usage per model, provider, day, hour (UTC) or run name (or two of
    them): calls, runs, tokens, exact cost, latency p50/p95/p99 and error share. A
    dashboard read: on the read replica when READ_DATABASE_URL is set."""
    return await caller.read_runs.usage(
        caller.actor, group_by=query.group_by, from_=query.from_, to=query.to
    )
