"""Datasets: test cases kept from runs, with every change a new version.

Each change (items added, one edited, one deleted) locks the dataset row, takes the next
version number and writes item rows stamped with it: an edit closes the item's current
row (valid_to) and adds the next one, a delete only closes it. Nothing is rewritten, so
reading as of any version is exact (see DatasetItem).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chad_memory.errors import InvalidInputError, NotFoundError
from chad_memory.models import Dataset, DatasetItem, Run, Step
from chad_memory.schemas import Page
from chad_memory.schemas.datasets import (
    DatasetChange,
    DatasetCreate,
    DatasetItemCreate,
    DatasetItemFromRun,
    DatasetItemRecord,
    DatasetRecord,
)
from chad_memory.stores.base import Store, check_owner_of, check_step_refs
from chad_memory.stores.limits import MAX_BATCH, check_batch
from chad_memory.stores.paging import Keyset, keyset_page, record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor

DATASETS = Keyset("datasets", (Dataset.created_at, Dataset.id), descending=True)
# Items in the order they (or their latest version) were written.
ITEMS = Keyset("dataset_items", (DatasetItem.created_at, DatasetItem.id), descending=False)


def parse_items_jsonl(text: str) -> list[DatasetItemCreate]:
    """JSON Lines, one item object a line (blank lines skipped); InvalidInputError names
    the first bad line."""
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(DatasetItemCreate.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not JSON"
            raise InvalidInputError(f"JSON Lines line {number}: {reason}") from None
        if len(items) > MAX_BATCH:
            raise InvalidInputError(f"at most {MAX_BATCH} items per batch")
    if not items:
        raise InvalidInputError("JSON Lines body holds no item")
    return items


def as_of(dataset_id: uuid.UUID, version: int) -> list[ColumnElement[bool]]:
    """The rows live at `version`: valid_from <= version < coalesce(valid_to, infinity)."""
    return [
        DatasetItem.dataset_id == dataset_id,
        DatasetItem.valid_from <= version,
        (DatasetItem.valid_to.is_(None)) | (DatasetItem.valid_to > version),
    ]


async def load_dataset(
    session: AsyncSession | AsyncConnection,
    dataset_id: uuid.UUID,
    actor: str | None,
    *,
    lock: bool = False,
) -> Any:
    """The dataset's row (NotFoundError / ForbiddenError by the actor rule)."""
    stmt = select(Dataset.__table__).where(Dataset.id == dataset_id)
    row = (await session.execute(stmt.with_for_update() if lock else stmt)).first()
    check_owner_of("dataset", dataset_id, None if row is None else row.actor, actor)
    return row


async def _next_version(session: AsyncSession, dataset_id: uuid.UUID, actor: str | None) -> Any:
    row = await load_dataset(session, dataset_id, actor, lock=True)
    version = row.version + 1
    await session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(version=version, updated_at=func.now())
    )
    return row, version


async def _check_sources(
    session: AsyncSession, owner: str, items: Sequence[DatasetItemCreate]
) -> None:
    """Sources must be the dataset owner's runs, and a step one of its run's."""
    runs = {i.source_run_id for i in items if i.source_run_id is not None}
    if any(i.source_step_id is not None and i.source_run_id is None for i in items):
        raise InvalidInputError("source_step_id needs its source_run_id")
    if runs:
        owners = dict(
            (await session.execute(select(Run.id, Run.actor).where(Run.id.in_(runs)))).all()
        )
        for run_id in runs:
            check_owner_of("run", run_id, owners.get(run_id), owner)
    for run_id in runs:
        steps = [i.source_step_id for i in items if i.source_run_id == run_id]
        await check_step_refs(session, run_id, steps)


async def _insert(
    session: AsyncSession,
    dataset_id: uuid.UUID,
    version: int,
    items: Sequence[DatasetItemCreate],
    item_ids: Sequence[uuid.UUID] | None = None,
) -> list[DatasetItemRecord]:
    rows = [
        {
            **item.model_dump(exclude={"metadata"}),
            "metadata_": item.metadata,
            "id": uuid.uuid4(),
            "item_id": item_ids[i] if item_ids else uuid.uuid4(),
            "dataset_id": dataset_id,
            "valid_from": version,
        }
        for i, item in enumerate(items)
    ]
    result = await session.scalars(
        pg_insert(DatasetItem).returning(DatasetItem, sort_by_parameter_order=True), rows
    )
    return [DatasetItemRecord.model_validate(r) for r in result]


async def _close(
    session: AsyncSession, dataset_id: uuid.UUID, item_id: uuid.UUID, version: int
) -> None:
    closed = await session.scalar(
        update(DatasetItem)
        .where(
            DatasetItem.dataset_id == dataset_id,
            DatasetItem.item_id == item_id,
            DatasetItem.valid_to.is_(None),
        )
        .values(valid_to=version)
        .returning(DatasetItem.id)
    )
    if closed is None:
        raise NotFoundError(f"dataset {dataset_id} has no item {item_id}")


class DatasetStore(Store):
    """Datasets and their items. Every method is one transaction; with `actor`, another
    actor's dataset (or source run) is ForbiddenError, as for runs."""

    @retried
    async def create_dataset(self, dataset: DatasetCreate, *, actor: str) -> DatasetRecord:
        values = {**dataset.model_dump(exclude={"metadata"}), "metadata_": dataset.metadata}
        values["actor"] = check_actor(actor)
        async with transaction(self._db, "create_dataset") as session:
            row = await session.scalar(pg_insert(Dataset).values(**values).returning(Dataset))
            return DatasetRecord.model_validate(row)

    @retried
    async def get_dataset(
        self, dataset_id: uuid.UUID, *, actor: str | None = None
    ) -> DatasetRecord:
        async with read(self._db, "get_dataset") as conn:
            return DatasetRecord.model_validate(
                dict((await load_dataset(conn, dataset_id, actor))._mapping)
            )

    @retried
    async def list_datasets(
        self, actor: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[DatasetRecord]:
        stmt = record_select(Dataset, DatasetRecord).where(Dataset.actor == check_actor(actor))
        async with read(self._db, "list_datasets") as conn:
            return await keyset_page(
                conn, stmt, DATASETS, DatasetRecord, self._cursors, limit=limit, cursor=cursor
            )

    @retried
    async def delete_dataset(self, dataset_id: uuid.UUID, *, actor: str | None = None) -> None:
        """Its items and experiments go with it; the runs stay."""
        async with transaction(self._db, "delete_dataset") as session:
            await load_dataset(session, dataset_id, actor, lock=True)
            await session.execute(delete(Dataset).where(Dataset.id == dataset_id))

    @retried
    async def add_items(
        self,
        dataset_id: uuid.UUID,
        items: Sequence[DatasetItemCreate],
        *,
        actor: str | None = None,
    ) -> DatasetChange:
        """Add items (all or none): one new version."""
        if not items:
            raise InvalidInputError("no items to add")
        check_batch(items, "items")
        async with transaction(self._db, "add_items") as session:
            row, version = await _next_version(session, dataset_id, actor)
            await _check_sources(session, row.actor, items)
            return DatasetChange(
                version=version, items=await _insert(session, dataset_id, version, items)
            )

    @retried
    async def add_item_from_run(
        self, dataset_id: uuid.UUID, source: DatasetItemFromRun, *, actor: str | None = None
    ) -> DatasetChange:
        """An item from a run (request payload -> input, result -> expected output) or
        from one of its steps (input, output), in one call."""
        async with transaction(self._db, "add_item_from_run") as session:
            row, version = await _next_version(session, dataset_id, actor)
            run = await session.get(Run, source.run_id)
            check_owner_of("run", source.run_id, None if run is None else run.actor, row.actor)
            assert run is not None
            given, produced = run.request_payload, run.result
            if source.step_id is not None:
                step = await session.get(Step, source.step_id)
                if step is None or step.run_id != run.id:
                    raise InvalidInputError(f"step_id: no step {source.step_id} in run {run.id}")
                given, produced = step.input, step.output
            expected = (
                produced
                if "expected_output" not in source.model_fields_set
                else source.expected_output
            )
            item = DatasetItemCreate(
                input=given,
                expected_output=expected,
                metadata=source.metadata,
                source_run_id=run.id,
                source_step_id=source.step_id,
            )
            return DatasetChange(
                version=version, items=await _insert(session, dataset_id, version, [item])
            )

    @retried
    async def update_item(
        self,
        dataset_id: uuid.UUID,
        item_id: uuid.UUID,
        item: DatasetItemCreate,
        *,
        actor: str | None = None,
    ) -> DatasetChange:
        """The item's next version replaces it (the old one stays readable as of before)."""
        async with transaction(self._db, "update_item") as session:
            row, version = await _next_version(session, dataset_id, actor)
            await _check_sources(session, row.actor, [item])
            await _close(session, dataset_id, item_id, version)
            saved = await _insert(session, dataset_id, version, [item], [item_id])
            return DatasetChange(version=version, items=saved)

    @retried
    async def delete_item(
        self, dataset_id: uuid.UUID, item_id: uuid.UUID, *, actor: str | None = None
    ) -> DatasetChange:
        async with transaction(self._db, "delete_item") as session:
            _, version = await _next_version(session, dataset_id, actor)
            await _close(session, dataset_id, item_id, version)
            return DatasetChange(version=version, items=[])

    @retried
    async def list_items(
        self,
        dataset_id: uuid.UUID,
        *,
        actor: str | None = None,
        version: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DatasetItemRecord]:
        """The items as of `version` (default: the current one); a version the dataset
        has not reached is InvalidInputError."""
        async with read(self._db, "list_items") as conn:
            row = await load_dataset(conn, dataset_id, actor)
            version = checked_version(row.version, version)
            stmt = record_select(DatasetItem, DatasetItemRecord).where(*as_of(dataset_id, version))
            return await keyset_page(
                conn, stmt, ITEMS, DatasetItemRecord, self._cursors, limit=limit, cursor=cursor
            )


def checked_version(current: int, wanted: int | None) -> int:
    if wanted is None:
        return current
    if not 0 <= wanted <= current:
        raise InvalidInputError(f"version: the dataset is at version {current}; got {wanted}")
    return wanted
