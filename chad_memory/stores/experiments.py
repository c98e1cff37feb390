"""Experiments on a dataset, and their comparison item by item.

An experiment's runs are ordinary runs, recorded by any door, whose metadata names the
experiment and the item (`chad.experiment_id`, `chad.dataset_item_id`): at the top level
(POST /runs, the LangChain tracer's `config["metadata"]`) or among the OTLP resource
attributes (`metadata.otel.resource`). Membership is read with `@>` probes on the runs'
GIN metadata index, so recording an experiment's run costs the write path nothing.

`compare` reads everything in three statements whatever the size: the experiments, the
items, and the runs with their costs and run-level scores.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import InvalidInputError
from chad_memory.models import DatasetItem, Experiment
from chad_memory.schemas import Page
from chad_memory.schemas.datasets import (
    EXPERIMENT_KEY,
    ITEM_KEY,
    ComparedItem,
    Comparison,
    ExperimentCreate,
    ExperimentRecord,
    ExperimentResult,
    ExperimentSummary,
    ScoreSummary,
)
from chad_memory.stores.base import Store, check_owner_of
from chad_memory.stores.datasets import as_of, checked_version, load_dataset
from chad_memory.stores.paging import Keyset, keyset_page, record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor

EXPERIMENTS = Keyset("experiments", (Experiment.created_at, Experiment.id), descending=True)
MAX_COMPARED = 5
# How many items (and so runs per experiment) one comparison reads at most.
MAX_COMPARED_ITEMS = 10_000


def _tag(key: str) -> str:
    """A membership key from the run's metadata, top level first, then the OTLP resource."""
    return f"coalesce(r.metadata ->> '{key}', r.metadata -> 'otel' -> 'resource' ->> '{key}')"


# The experiments' runs, oldest first, each with its cost (the sum of its LLM calls'),
# duration and run-level scores (the latest of each name), in one statement: the runs by
# `@>` probes on ix_runs_metadata (any of the tags), the rest per run by its indexes.
@functools.lru_cache(maxsize=2 * MAX_COMPARED)
def runs_of_experiments(tags: int) -> TextClause:
    """The statement for `tags` membership probes (parameters t0, t1, ...): an OR of
    `@>` tests, which the GIN index serves as a bitmap OR (it cannot serve `@> ANY`)."""
    probes = " OR ".join(f"r.metadata @> CAST(:t{i} AS jsonb)" for i in range(tags))
    return text(
        f"""
SELECT r.id, {_tag(EXPERIMENT_KEY)} AS experiment, {_tag(ITEM_KEY)} AS item,
       r.status, r.result,
       extract(epoch FROM r.completed_at - r.started_at) * 1000 AS duration_ms,
       coalesce((SELECT sum(c.cost_usd) FROM llm_calls c WHERE c.run_id = r.id), 0)
           AS cost_usd,
       coalesce((SELECT jsonb_object_agg(s.name, CASE s.data_type
                    WHEN 'categorical' THEN to_jsonb(s.label)
                    WHEN 'boolean' THEN to_jsonb(s.value <> 0)
                    ELSE to_jsonb(s.value) END ORDER BY s.created_at, s.id)
                 FROM scores s WHERE s.run_id = r.id AND s.target_type = 'run'), '{{}}')
           AS scores
FROM runs r
WHERE r.actor = :actor AND ({probes})
ORDER BY r.created_at, r.id
"""
    )


def _summary(values: list[bool | float | str]) -> ScoreSummary:
    numbers = [float(v) for v in values if not isinstance(v, str)]
    labels: dict[str, int] = {}
    for v in values:
        if isinstance(v, str):
            labels[v] = labels.get(v, 0) + 1
    return ScoreSummary(
        count=len(values), mean=sum(numbers) / len(numbers) if numbers else None, labels=labels
    )


def _deltas(first: ExperimentResult, other: ExperimentResult) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, value in other.scores.items():
        base = first.scores.get(name)
        if base is not None and not isinstance(base, str) and not isinstance(value, str):
            found[name] = float(value) - float(base)
    if first.cost_usd is not None and other.cost_usd is not None:
        found["cost_usd"] = float(other.cost_usd - first.cost_usd)
    if first.duration_ms is not None and other.duration_ms is not None:
        found["duration_ms"] = other.duration_ms - first.duration_ms
    return found


class ExperimentStore(Store):
    """Experiments and `compare`. With `actor`, another actor's experiment or dataset is
    ForbiddenError; only the actor's own runs are ever read."""

    @retried
    async def create_experiment(
        self, experiment: ExperimentCreate, *, actor: str
    ) -> ExperimentRecord:
        """An experiment on one of the actor's datasets, at the version given (default:
        the current one)."""
        async with transaction(self._db, "create_experiment") as session:
            dataset = await load_dataset(session, experiment.dataset_id, check_actor(actor))
            version = checked_version(dataset.version, experiment.dataset_version)
            values = experiment.model_dump(exclude={"metadata"})
            values |= {"metadata_": experiment.metadata, "actor": actor, "dataset_version": version}
            row = await session.scalar(pg_insert(Experiment).values(**values).returning(Experiment))
            return ExperimentRecord.model_validate(row)

    @retried
    async def get_experiment(
        self, experiment_id: uuid.UUID, *, actor: str | None = None
    ) -> ExperimentRecord:
        async with read(self._db, "get_experiment") as conn:
            stmt = record_select(Experiment, ExperimentRecord).where(Experiment.id == experiment_id)
            row = (await conn.execute(stmt)).first()
        check_owner_of("experiment", experiment_id, None if row is None else row.actor, actor)
        assert row is not None
        return ExperimentRecord.model_validate(dict(row._mapping))

    @retried
    async def delete_experiment(
        self, experiment_id: uuid.UUID, *, actor: str | None = None
    ) -> None:
        """The experiment only: its runs stay, as ordinary runs."""
        async with transaction(self._db, "delete_experiment") as session:
            owner = await session.scalar(
                select(Experiment.actor).where(Experiment.id == experiment_id)
            )
            check_owner_of("experiment", experiment_id, owner, actor)
            await session.execute(delete(Experiment).where(Experiment.id == experiment_id))

    @retried
    async def list_experiments(
        self,
        actor: str,
        *,
        dataset_id: uuid.UUID | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ExperimentRecord]:
        stmt = record_select(Experiment, ExperimentRecord).where(
            Experiment.actor == check_actor(actor)
        )
        if dataset_id is not None:
            stmt = stmt.where(Experiment.dataset_id == dataset_id)
        async with read(self._db, "list_experiments") as conn:
            return await keyset_page(
                conn, stmt, EXPERIMENTS, ExperimentRecord, self._cursors, limit=limit, cursor=cursor
            )

    @retried
    async def compare(
        self, experiment_ids: Sequence[uuid.UUID], *, actor: str | None = None
    ) -> Comparison:
        """Per item: each experiment's output, run-level scores, cost, duration, and the
        deltas from the first experiment; per experiment: the aggregates. The experiments
        must share a dataset; items are read as of the first one's version."""
        ids = list(dict.fromkeys(experiment_ids))
        if not 1 <= len(ids) <= MAX_COMPARED:
            raise InvalidInputError(f"ids: compare 1 to {MAX_COMPARED} different experiments")
        async with read(self._db, "compare") as conn:
            stmt = record_select(Experiment, ExperimentRecord).where(Experiment.id.in_(ids))
            found = {
                r.id: ExperimentRecord.model_validate(dict(r._mapping))
                for r in await conn.execute(stmt)
            }
            for experiment_id in ids:
                owner = found[experiment_id].actor if experiment_id in found else None
                check_owner_of("experiment", experiment_id, owner, actor)
            experiments = [found[i] for i in ids]
            first = experiments[0]
            if any(e.dataset_id != first.dataset_id for e in experiments):
                raise InvalidInputError("ids: the experiments must be on the same dataset")
            owner = first.actor
            item_rows = (
                await conn.execute(
                    select(DatasetItem.item_id, DatasetItem.input, DatasetItem.expected_output)
                    .where(*as_of(first.dataset_id, first.dataset_version))
                    .order_by(DatasetItem.created_at, DatasetItem.id)
                    .limit(MAX_COMPARED_ITEMS)
                )
            ).all()
            tags = [json.dumps({EXPERIMENT_KEY: str(i)}) for i in ids]
            tags += [json.dumps({"otel": {"resource": {EXPERIMENT_KEY: str(i)}}}) for i in ids]
            run_rows = (
                await conn.execute(
                    runs_of_experiments(len(tags)),
                    {"actor": owner, **{f"t{i}": tag for i, tag in enumerate(tags)}},
                )
            ).all()
        # The latest run of each (experiment, item): rows come oldest first.
        runs: dict[tuple[str, str], Any] = {}
        for run in run_rows:
            if run.experiment is not None and run.item is not None:
                runs[run.experiment, run.item] = run
        return _assemble(experiments, item_rows, runs)


def _assemble(
    experiments: list[ExperimentRecord],
    item_rows: Sequence[Any],
    runs: dict[tuple[str, str], Any],
) -> Comparison:
    items: list[ComparedItem] = []
    per_experiment: dict[uuid.UUID, list[ExperimentResult]] = {e.id: [] for e in experiments}
    for item in item_rows:
        results = []
        for experiment in experiments:
            run = runs.get((str(experiment.id), str(item.item_id)))
            # Built without validation: every value comes from the database's own columns.
            if run is None:
                result = ExperimentResult.model_construct(
                    experiment_id=experiment.id,
                    run_id=None,
                    status=None,
                    output=None,
                    cost_usd=None,
                    duration_ms=None,
                    scores={},
                )
            else:
                result = ExperimentResult.model_construct(
                    experiment_id=experiment.id,
                    run_id=run.id,
                    status=run.status,
                    output=run.result,
                    cost_usd=run.cost_usd,
                    duration_ms=None if run.duration_ms is None else float(run.duration_ms),
                    # jsonb reads 1.0 back as 1: numbers are floats, as ScoreRecord has them.
                    scores={k: float(v) if type(v) is int else v for k, v in run.scores.items()},
                )
                per_experiment[experiment.id].append(result)
            results.append(result)
        deltas = {
            other.experiment_id: _deltas(results[0], other)
            for other in results[1:]
            if results[0].run_id is not None and other.run_id is not None
        }
        items.append(
            ComparedItem.model_construct(
                item_id=item.item_id,
                input=item.input,
                expected_output=item.expected_output,
                results=results,
                deltas=deltas,
            )
        )
    summaries = []
    for experiment in experiments:
        done = per_experiment[experiment.id]
        durations = [r.duration_ms for r in done if r.duration_ms is not None]
        names: dict[str, list[bool | float | str]] = {}
        for result in done:
            for name, value in result.scores.items():
                names.setdefault(name, []).append(value)
        summaries.append(
            ExperimentSummary(
                experiment=experiment,
                runs=len(done),
                succeeded=sum(r.status == "succeeded" for r in done),
                cost_usd=sum((r.cost_usd or Decimal(0) for r in done), Decimal(0)),
                mean_duration_ms=sum(durations) / len(durations) if durations else None,
                scores={name: _summary(values) for name, values in sorted(names.items())},
            )
        )
    first = experiments[0]
    return Comparison(
        dataset_id=first.dataset_id,
        dataset_version=first.dataset_version,
        experiments=summaries,
        items=items,
    )
