"""A run's page: the run, its stats, a page of steps, its LLM calls and artifacts, read
together on one pooled connection in three round trips.

The dashboard's run page shows all of these at once. Read one store method at a time,
that was six checkouts, about twelve round trips and the owner checked five times; here
the owner is checked once, by the first statement, which also brings the run, its
artifacts and its stats (`run_stats.STATS_COLUMNS`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    ScalarSelect,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from chad_memory.models import Artifact, Run
from chad_memory.schemas import ArtifactRecord, LLMCallRecord, RunPage, RunRecord, StepRecord
from chad_memory.stores.base import Store, check_owner_of
from chad_memory.stores.paging import keyset_page, record_select
from chad_memory.stores.run_children import ARTIFACTS, LLM_CALLS, calls_of
from chad_memory.stores.run_stats import STATS_COLUMNS, STATS_FROM, stats_of
from chad_memory.stores.statements import DriverStatement
from chad_memory.stores.steps import STEPS, steps_of
from chad_memory.stores.transactions import driver_of, read, retried


def _utc_text(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Timestamps as UTC ISO text inside JSON: jsonb would write them in the session's
    TimeZone, and the records read from plain columns are always UTC."""
    if not isinstance(column.type, DateTime):
        return column
    return func.to_char(
        func.timezone(literal_column("'UTC'"), column),
        literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''),
    )


def artifacts_of_run() -> ScalarSelect[Any]:
    """The run's artifacts as one jsonb array (ARTIFACTS order), for the detail statement."""
    table = Artifact.__table__
    fields = [
        part
        for name in ArtifactRecord.model_fields
        for part in (literal_column(f"'{name}'"), _utc_text(table.c[name]))
    ]
    ordered = aggregate_order_by(
        func.jsonb_build_object(*fields), *(c.expression for c in ARTIFACTS.columns)
    )
    return (
        select(func.coalesce(func.jsonb_agg(ordered), literal_column("'[]'::jsonb")))
        .where(table.c.run_id == Run.id)
        .scalar_subquery()
    )


_RUN_PAGE = DriverStatement.of(
    record_select(Run, RunRecord)
    .add_columns(artifacts_of_run().label("artifacts"), *STATS_COLUMNS)
    .select_from(STATS_FROM)
    .where(Run.id == bindparam("run_id"))
)


class PageMethods(Store):
    @retried
    async def get_run_page(
        self,
        run_id: uuid.UUID,
        *,
        actor: str | None = None,
        steps_limit: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """The run (404 / 403 as `get_run`), its stats, the page of steps after `cursor`,
        and all its LLM calls and artifacts, oldest first."""
        async with read(self._db, "get_run_page") as conn:
            row = await (await driver_of(conn)).fetchrow(_RUN_PAGE.sql, run_id)
            check_owner_of("run", run_id, None if row is None else row["actor"], actor)
            assert row is not None
            steps = await keyset_page(
                conn,
                steps_of(run_id),
                STEPS,
                StepRecord,
                self._cursors,
                limit=steps_limit,
                cursor=cursor,
            )
            calls = await conn.execute(LLM_CALLS.order(calls_of(run_id)))
            llm_calls = [LLMCallRecord.model_validate(dict(r._mapping)) for r in calls]
        values = _RUN_PAGE.row(row)
        run = RunRecord.model_validate({k: values[k] for k in RunRecord.model_fields})
        return RunPage(
            run=run,
            stats=stats_of(run_id, values),
            steps=steps,
            llm_calls=llm_calls,
            artifacts=[ArtifactRecord.model_validate(a) for a in values["artifacts"]],
        )
