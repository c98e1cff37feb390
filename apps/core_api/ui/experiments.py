"""/ui/experiments: the signed-in actor's experiments, and two or more compared item by
item (`ExperimentStore.compare`, the same call as `GET /experiments/compare`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from apps.core_api.deps import stores_of
from apps.core_api.ui.pages import SignedIn

router = APIRouter(prefix="/ui", include_in_schema=False)

EXPERIMENTS_PAGE = 100


@router.get("/experiments")
async def experiments_page(ui: SignedIn) -> HTMLResponse:
    store = stores_of(ui.request).experiments
    page = await store.list_experiments(ui.actor, limit=EXPERIMENTS_PAGE)
    return ui.page("experiments.html", experiments=page.items)


@router.get("/experiments/compare")
async def compare_page(
    ui: SignedIn, ids: Annotated[list[uuid.UUID], Query(max_length=5)]
) -> HTMLResponse:
    store = stores_of(ui.request).experiments
    report = await store.compare(ids, actor=ui.actor)
    names = sorted({n for e in report.experiments for n in e.scores})
    return ui.page("compare.html", report=report, names=names)
