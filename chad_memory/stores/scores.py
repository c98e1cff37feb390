"""Scores on runs, steps, LLM calls and threads, and the score configs that type them.

A score belongs to its target's actor: scoring another actor's run is ForbiddenError,
exactly as reading it is. A score's id (the caller's own, or the one found by its
idempotency key) makes a re-send an update, never a second score.

Types: a name with a config must match it (its type, and its range or categories). A
name without one is typed by its first use: once `helpfulness` has held a number, a
label for it is refused until a config says otherwise. First uses of one name are
serialised by a transaction-scoped advisory lock, so two of them cannot disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    Table,
    delete,
    func,
    literal_column,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from chad_memory.errors import (
    ChadMemoryError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from chad_memory.models import LLMCall, Run, Score, ScoreConfig, Step, Thread
from chad_memory.schemas import (
    Page,
    ScoreConfigCreate,
    ScoreConfigRecord,
    ScoreCreate,
    ScoreFields,
    ScoreFilter,
    ScoreRecord,
)
from chad_memory.schemas.scores import value_type
from chad_memory.stores.base import Store, check_owner_of, check_run_owner
from chad_memory.stores.limits import MAX_PAGE_SIZE
from chad_memory.stores.paging import Keyset, keyset_select, page_of
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor, quoted

__all__ = ["SCORES", "ScoreConfigSaved", "ScoreSaved", "ScoreStore", "score_record"]

# Newest first, in every list of scores.
SCORES = Keyset("scores", (Score.created_at, Score.id), descending=True)
# The column that holds each kind of target's id.
TARGET_COLUMN = {
    "run": Score.run_id,
    "step": Score.step_id,
    "llm_call": Score.llm_call_id,
    "thread": Score.thread_id,
}
_SCORES_TABLE = cast(Table, Score.__table__)
_CONFIGS_TABLE = cast(Table, ScoreConfig.__table__)
_COLUMNS = tuple(_SCORES_TABLE.c)
# Written on a re-send: everything but the owner, the id and when it was first made.
_UPDATED = (
    "target_type",
    "run_id",
    "step_id",
    "llm_call_id",
    "thread_id",
    "name",
    "data_type",
    "value",
    "label",
    "source",
    "comment",
    "author",
    "metadata",
    "idempotency_key",
)


class ScoreSaved(NamedTuple):
    score: ScoreRecord
    created: bool  # False: an existing score (same id or idempotency key) was updated


class ScoreConfigSaved(NamedTuple):
    config: ScoreConfigRecord
    created: bool


def score_record(row: Mapping[str, Any] | RowMapping) -> ScoreRecord:
    """A `scores` row (its columns by name) as the record clients read."""
    kind = row["data_type"]
    value: bool | float | str = (
        row["label"]
        if kind == "categorical"
        else bool(row["value"])
        if kind == "boolean"
        else row["value"]
    )
    return ScoreRecord.model_validate(
        {
            **{k: v for k, v in row.items() if k in ScoreRecord.model_fields},
            "metadata": row["metadata"],
            "target_id": row[TARGET_COLUMN[row["target_type"]].key],
            "value": value,
        }
    )


def _target(target_type: str, target_id: uuid.UUID) -> Select[Any]:
    """(owner, run id) of a target; no row when it does not exist."""
    if target_type == "thread":
        columns: list[Any] = [Thread.actor, null()]
        return select(*columns).where(Thread.id == target_id)
    owned: Any = {"run": Run, "step": Step, "llm_call": LLMCall}[target_type]
    run_id = Run.id if owned is Run else owned.run_id
    columns = [Run.actor, run_id]
    stmt = select(*columns).where(owned.id == target_id)
    return stmt if owned is Run else stmt.join_from(owned, Run, Run.id == run_id)


def check_config(config: ScoreConfig | ScoreConfigRecord, value: bool | float | str) -> None:
    """InvalidInputError naming the config when `value` is not of its type or range."""
    kind = value_type(value)
    where = f"value: score config {quoted(config.name)!r}"
    if kind != config.data_type:
        raise InvalidInputError(f"{where} is {config.data_type}; got a {kind} value")
    if kind == "categorical" and config.categories is not None and value not in config.categories:
        allowed = ", ".join(config.categories)
        raise InvalidInputError(f"{where} allows {allowed}; got {quoted(str(value))!r}")
    if kind == "numeric":
        assert isinstance(value, float | int)
        low = config.min_value if config.min_value is not None else float("-inf")
        high = config.max_value if config.max_value is not None else float("inf")
        if not low <= value <= high:
            raise InvalidInputError(
                f"{where} allows {config.min_value} to {config.max_value}; got {value}"
            )


async def _checked_type(
    session: AsyncSession, owner: str, score: ScoreCreate, score_id: uuid.UUID | None
) -> str:
    """The score's type, after checking it against its config or the name's first use."""
    kind = value_type(score.value)
    config = await session.scalar(
        select(ScoreConfig).where(ScoreConfig.actor == owner, ScoreConfig.name == score.name)
    )
    if config is not None:
        check_config(config, score.value)
        return kind
    lock = func.pg_advisory_xact_lock(func.hashtext(owner), func.hashtext(score.name))
    await session.execute(select(lock))
    others = select(Score.data_type).where(Score.actor == owner, Score.name == score.name)
    if score_id is not None:
        others = others.where(Score.id != score_id)
    first = await session.scalar(others.limit(1))
    if first is not None and first != kind:
        raise InvalidInputError(
            f"value: score {quoted(score.name)!r} was first used as {first}; send a {first} "
            f"value, or create a score config for it"
        )
    return kind


def _conditions(actor: str | None, filters: ScoreFilter | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if actor is not None:
        conds.append(Score.actor == check_actor(actor))
    if filters is None:
        return conds
    if filters.run_id is not None:
        conds.append(Score.run_id == filters.run_id)
    if filters.target_type is not None:
        conds.append(Score.target_type == filters.target_type)
    if filters.target_id is not None:
        column = TARGET_COLUMN[filters.target_type] if filters.target_type else None
        if column is None:
            raise InvalidInputError("target_id needs target_type")
        conds.append(column == filters.target_id)
    if filters.name is not None:
        conds.append(Score.name == filters.name)
    if filters.source is not None:
        conds.append(Score.source == filters.source)
    if filters.created_after is not None:
        conds.append(Score.created_at >= filters.created_after)
    if filters.created_before is not None:
        conds.append(Score.created_at < filters.created_before)
    return conds


class ScoreStore(Store):
    """Scores and score configs. Every method is one transaction (or one read).

    Methods that take `actor` check ownership (ForbiddenError for another actor's run,
    thread or score); `actor=None` is a trusted caller, and a score then belongs to its
    target's actor.
    """

    # Scores -----------------------------------------------------------------------

    @retried
    async def save_score(self, score: ScoreCreate, *, actor: str | None = None) -> ScoreSaved:
        """Create the score, or update the one with its id or idempotency key.

        An unknown target is InvalidInputError naming `target_id` (it is a value in the
        score); use `score_run` when the run is the resource being addressed.
        """
        return await self._save(score, actor, InvalidInputError)

    @retried
    async def score_run(
        self,
        run_id: uuid.UUID,
        score: ScoreFields,
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> ScoreSaved:
        """`save_score` on a run: NotFoundError for an unknown run, as for its other
        children."""
        create = ScoreCreate.model_validate(
            {
                **score.model_dump(),
                "target_type": "run",
                "target_id": run_id,
                "idempotency_key": idempotency_key,
            }
        )
        return await self._save(create, actor, NotFoundError)

    async def _save(
        self, score: ScoreCreate, actor: str | None, missing: type[ChadMemoryError]
    ) -> ScoreSaved:
        async with transaction(self._db, "save_score") as session:
            found = (await session.execute(_target(score.target_type, score.target_id))).first()
            if found is None:
                kind = score.target_type.replace("_", " ")
                raise missing(f"target_id: no {kind} {score.target_id}")
            owner, run_id = found
            check_owner_of(score.target_type, score.target_id, owner, actor)
            score_id = await self._id_of(session, owner, score)
            kind = await _checked_type(session, owner, score, score_id)
            values = {
                "id": score_id or uuid.uuid4(),
                "actor": owner,
                "target_type": score.target_type,
                "run_id": run_id,
                "step_id": None,
                "llm_call_id": None,
                "thread_id": None,
                "name": score.name,
                "data_type": kind,
                "value": None if kind == "categorical" else float(score.value),
                "label": score.value if kind == "categorical" else None,
                "source": score.source,
                "comment": score.comment,
                "author": score.author,
                "metadata": score.metadata,
                "idempotency_key": score.idempotency_key,
            }
            if score.target_type != "run":
                values[TARGET_COLUMN[score.target_type].key] = score.target_id
            insert = pg_insert(_SCORES_TABLE).values(values)
            upsert = insert.on_conflict_do_update(
                index_elements=[Score.id],
                set_={**{k: insert.excluded[k] for k in _UPDATED}, "updated_at": func.now()},
                where=Score.actor == insert.excluded.actor,
            ).returning(*_COLUMNS, literal_column("xmax = 0").label("inserted"))
            row = (await session.execute(upsert)).mappings().first()
            if row is None:
                raise ForbiddenError(f"score {values['id']} belongs to another actor")
        return ScoreSaved(score_record(row), bool(row["inserted"]))

    @staticmethod
    async def _id_of(session: AsyncSession, owner: str, score: ScoreCreate) -> uuid.UUID | None:
        """The id this write goes to: the caller's, or the score its key already names."""
        if score.idempotency_key is None:
            return score.id
        keyed = await session.scalar(
            select(Score.id).where(
                Score.actor == owner, Score.idempotency_key == score.idempotency_key
            )
        )
        if keyed is not None and score.id is not None and keyed != score.id:
            raise ConflictError(f"the idempotency key already names score {keyed}, not {score.id}")
        return keyed or score.id

    @retried
    async def get_score(self, score_id: uuid.UUID, *, actor: str | None = None) -> ScoreRecord:
        async with read(self._db, "get_score") as conn:
            row = (await conn.execute(select(*_COLUMNS).where(Score.id == score_id))).first()
        check_owner_of("score", score_id, None if row is None else row.actor, actor)
        assert row is not None
        return score_record(row._mapping)

    @retried
    async def list_scores(
        self,
        actor: str | None,
        filters: ScoreFilter | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ScoreRecord]:
        """Scores newest first. With `filters.run_id`, that run must exist and be
        `actor`'s (NotFoundError / ForbiddenError, as for the run's other children)."""
        stmt = select(*_COLUMNS).where(*_conditions(actor, filters))
        async with read(self._db, "list_scores") as conn:
            if filters is not None and filters.run_id is not None:
                await check_run_owner(conn, filters.run_id, actor)
            rows = await conn.execute(
                keyset_select(stmt, SCORES, self._cursors, limit=limit, cursor=cursor)
            )
            items = [score_record(row._mapping) for row in rows]
        return page_of(items, SCORES, self._cursors, limit)

    @retried
    async def scores_of_runs(
        self, run_ids: Sequence[uuid.UUID], *, actor: str | None = None
    ) -> dict[uuid.UUID, list[ScoreRecord]]:
        """The run-level scores of each run, newest first, in one statement (for pages
        that show a list of runs). Runs of other actors simply have none here."""
        if not run_ids:
            return {}
        if len(run_ids) > MAX_PAGE_SIZE:
            raise InvalidInputError(f"at most {MAX_PAGE_SIZE} runs at once")
        stmt = (
            select(*_COLUMNS)
            .where(Score.run_id.in_(list(run_ids)), Score.target_type == "run")
            .where(*_conditions(actor, None))
            .order_by(Score.created_at.desc(), Score.id.desc())
        )
        async with read(self._db, "scores_of_runs") as conn:
            rows = await conn.execute(stmt)
            found: dict[uuid.UUID, list[ScoreRecord]] = {}
            for row in rows:
                found.setdefault(row.run_id, []).append(score_record(row._mapping))
        return found

    @retried
    async def delete_score(self, score_id: uuid.UUID, *, actor: str | None = None) -> None:
        async with transaction(self._db, "delete_score") as session:
            owner = await session.scalar(select(Score.actor).where(Score.id == score_id))
            check_owner_of("score", score_id, owner, actor)
            await session.execute(delete(Score).where(Score.id == score_id))

    # Score configs ----------------------------------------------------------------

    @retried
    async def save_score_config(self, config: ScoreConfigCreate, *, actor: str) -> ScoreConfigSaved:
        """Create the name's config, or replace it. It types the scores written from now
        on; scores already stored keep their values."""
        values = {**config.model_dump(), "actor": check_actor(actor)}
        insert = pg_insert(_CONFIGS_TABLE).values(values)
        upsert = insert.on_conflict_do_update(
            index_elements=[ScoreConfig.actor, ScoreConfig.name],
            set_={
                **{k: insert.excluded[k] for k in config.model_dump() if k != "name"},
                "updated_at": func.now(),
            },
        ).returning(*ScoreConfig.__table__.c, literal_column("xmax = 0").label("inserted"))
        async with transaction(self._db, "save_score_config") as session:
            row = (await session.execute(upsert)).mappings().one()
        return ScoreConfigSaved(ScoreConfigRecord.model_validate(dict(row)), bool(row["inserted"]))

    @retried
    async def list_score_configs(self, actor: str) -> list[ScoreConfigRecord]:
        """The actor's configs by name (a short list: one per score name)."""
        stmt = (
            select(ScoreConfig)
            .where(ScoreConfig.actor == check_actor(actor))
            .order_by(ScoreConfig.name)
            .limit(MAX_PAGE_SIZE)
        )
        async with transaction(self._db, "list_score_configs") as session:
            return [ScoreConfigRecord.model_validate(c) for c in await session.scalars(stmt)]

    @retried
    async def get_score_config(self, name: str, *, actor: str) -> ScoreConfigRecord:
        stmt = select(ScoreConfig).where(
            ScoreConfig.actor == check_actor(actor), ScoreConfig.name == name
        )
        async with transaction(self._db, "get_score_config") as session:
            row = await session.scalar(stmt)
        if row is None:
            raise NotFoundError(f"no score config named {quoted(name)!r}")
        return ScoreConfigRecord.model_validate(row)

    @retried
    async def delete_score_config(self, name: str, *, actor: str) -> None:
        """Scores of that name stay; new ones are typed by the name's first use again."""
        stmt = (
            delete(ScoreConfig)
            .where(ScoreConfig.actor == check_actor(actor), ScoreConfig.name == name)
            .returning(ScoreConfig.id)
        )
        async with transaction(self._db, "delete_score_config") as session:
            if await session.scalar(stmt) is None:
                raise NotFoundError(f"no score config named {quoted(name)!r}")
