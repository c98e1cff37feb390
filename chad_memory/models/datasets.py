"""Datasets kept from runs (items with versions) and experiments run on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id, _metadata


class Dataset(Base):
    """A named set of test cases; `version` counts its changes (0: never changed)."""

    __tablename__ = "datasets"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(nullable=False)
    description: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = _metadata()
    version: Mapped[int] = mapped_column(nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)

    __table_args__ = (Index("uq_datasets_actor_name", "actor", "name", unique=True),)


class DatasetItem(Base):
    """One version of one item: live from dataset version `valid_from` until `valid_to`
    (exclusive; null while it is current). An edit closes the row and adds the next one
    with the same `item_id`; a delete only closes it. Reading as of version v takes the
    rows with valid_from <= v < coalesce(valid_to, infinity)."""

    __tablename__ = "dataset_items"

    id: Mapped[uuid.UUID] = _id()
    item_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    )
    input: Mapped[Any | None] = mapped_column(JSONB)
    expected_output: Mapped[Any | None] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any]] = _metadata()
    source_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL")
    )
    source_step_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("steps.id", ondelete="SET NULL")
    )
    valid_from: Mapped[int] = mapped_column(nullable=False)
    valid_to: Mapped[int | None]
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        Index(
            "uq_dataset_items_dataset_id_item_id",
            "dataset_id",
            "item_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_dataset_items_dataset_id_valid_from", "dataset_id", "valid_from"),
        Index("ix_dataset_items_source_run_id", "source_run_id"),
        Index("ix_dataset_items_source_step_id", "source_step_id"),
    )


class Experiment(Base):
    """A named set of runs on one dataset (as of `dataset_version`). Its runs are ordinary
    runs whose metadata names it (`chad.experiment_id`) and the item they ran on
    (`chad.dataset_item_id`): see `chad_memory.stores.experiments`."""

    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(nullable=False)
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    )
    dataset_version: Mapped[int] = mapped_column(nullable=False)
    description: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        Index("uq_experiments_actor_name", "actor", "name", unique=True),
        Index("ix_experiments_dataset_id", "dataset_id"),
    )
