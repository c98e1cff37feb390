"""Experiments on a dataset, and their comparison item by item.

An experiment's runs are ordinary runs, recorded by any door, whose metadata names the
experiment and the item (`chad.experiment_id`, `chad.dataset_item_id`): at the top level
(POST /runs, the LangChain tracer's `config["metadata"]`) or among the OTLP resource
attributes (`metadata.otel.resource`). Membership is read with `@>` probes on the runs'
GIN metadata index, so recording an experiment's run costs the write path nothing.

`compare` reads everything in five statements whatever the size: the experiments, the
items, the runs, their costs, their run-level scores.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import InvalidInputError
from chad_memory.models import DatasetItem, Experiment, LLMCall, Run, Score
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
from chad_memory.stores.scores import score_record
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.validation import check_actor

EXPERIMENTS = Keyset("experiments", (Experiment.created_at, Experiment.id), descending=True)
MAX_COMPARED = 5
# How many items (and so runs per experiment) one comparison reads at most.
MAX_COMPARED_ITEMS = 10_000


def membership(experiment_ids: Sequence[uuid.UUID]) -> Any:
    """Runs whose metadata names one of the experiments, at the top level or in the OTLP
    resource: each an `@>` probe served by ix_runs_metadata."""
    probes = []
    for experiment_id in experiment_ids:
        tag = {EXPERIMENT_KEY: str(experiment_id)}
        probes.append(Run.metadata_.contains(tag))
        probes.append(Run.metadata_.contains({"otel": {"resource": tag}}))
    return or_(*probes)


def _key(metadata: dict[str, Any], key: str) -> str | None:
    found = metadata.get(key)
    if found is None:
        resource = (metadata.get("otel") or {}).get("resource") or {}
        found = resource.get(key) if isinstance(resource, dict) else None
    return found if isinstance(found, str) else None


def _duration(run: Any) -> float | None:
    if run.started_at is None or run.completed_at is None:
        return None
    elapsed: float = (run.completed_at - run.started_at).total_seconds() * 1000
    return elapsed


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
            run_rows = (
                await conn.execute(
                    select(
                        Run.id,
                        Run.status,
                        Run.result,
                        Run.started_at,
                        Run.completed_at,
                        Run.created_at,
                        Run.metadata_.label("meta"),
                    )
                    .where(Run.actor == owner, membership(ids))
                    .order_by(Run.created_at, Run.id)
                )
            ).all()
            # The latest run of each (experiment, item).
            runs: dict[tuple[str, str], Any] = {}
            for run in run_rows:
                experiment, item = (
                    _key(run.meta, EXPERIMENT_KEY),
                    _key(run.meta, ITEM_KEY),
                )
                if experiment is not None and item is not None:
                    runs[experiment, item] = run
            run_ids = [r.id for r in runs.values()]
            costs = (
                dict(
                    (
                        await conn.execute(
                            select(LLMCall.run_id, func.sum(LLMCall.cost_usd))
                            .where(LLMCall.run_id.in_(run_ids))
                            .group_by(LLMCall.run_id)
                        )
                    ).all()
                )
                if run_ids
                else {}
            )
            scores: dict[uuid.UUID, dict[str, bool | float | str]] = {}
            if run_ids:
                score_rows = await conn.execute(
                    select(*Score.__table__.c)
                    .where(Score.run_id.in_(run_ids), Score.target_type == literal_column("'run'"))
                    .order_by(Score.created_at)
                )
                for row in score_rows:
                    record = score_record(row._mapping)
                    scores.setdefault(row.run_id, {})[record.name] = record.value
        return _assemble(experiments, item_rows, runs, costs, scores)


def _assemble(
    experiments: list[ExperimentRecord],
    item_rows: Sequence[Any],
    runs: dict[tuple[str, str], Any],
    costs: dict[uuid.UUID, Decimal | None],
    scores: dict[uuid.UUID, dict[str, bool | float | str]],
) -> Comparison:
    items: list[ComparedItem] = []
    per_experiment: dict[uuid.UUID, list[ExperimentResult]] = {e.id: [] for e in experiments}
    for item in item_rows:
        results = []
        for experiment in experiments:
            run = runs.get((str(experiment.id), str(item.item_id)))
            if run is None:
                result = ExperimentResult(experiment_id=experiment.id)
            else:
                result = ExperimentResult(
                    experiment_id=experiment.id,
                    run_id=run.id,
                    status=run.status,
                    output=run.result,
                    cost_usd=costs.get(run.id) or Decimal(0),
                    duration_ms=_duration(run),
                    scores=scores.get(run.id, {}),
                )
                per_experiment[experiment.id].append(result)
            results.append(result)
        deltas = {
            other.experiment_id: _deltas(results[0], other)
            for other in results[1:]
            if results[0].run_id is not None and other.run_id is not None
        }
        items.append(
            ComparedItem(
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
