"""Export and import carry scores, score configs, datasets (every item version) and
experiments, exactly, and a repeat changes nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory import PostgresStore, RunCreate, StepCreate, ThreadCreate, ThreadStore
from chad_memory.archive import ExportScope, export_to_file
from chad_memory.archive_import import import_file
from chad_memory.schemas import ScoreConfigCreate, ScoreCreate
from chad_memory.schemas.datasets import (
    DatasetCreate,
    DatasetItemCreate,
    DatasetItemFromRun,
    ExperimentCreate,
)
from chad_memory.stores import DatasetStore, ExperimentStore, ScoreStore
from tests.operations.test_archive import _snapshot

KINDS = ("score_config", "score", "dataset", "dataset_item", "experiment")


async def test_scores_datasets_and_experiments_round_trip(
    tmp_path: Path,
    engine: AsyncEngine,
    other_engine: AsyncEngine,
    store: PostgresStore,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    run = await store.save_run(RunCreate(actor="alice", request_payload={"q": 1}, result=2))
    (step,) = await store.save_steps([StepCreate(run_id=run.id, step_index=0, output="o")])
    thread = await ThreadStore(session_factory).create_thread(
        ThreadCreate(agent_type="chat"), actor="alice"
    )
    scores = ScoreStore(session_factory)
    await scores.save_score_config(
        ScoreConfigCreate(name="q", data_type="numeric", min_value=0, max_value=1), actor="alice"
    )
    for kind, target, value in (
        ("run", run.id, 0.5),
        ("step", step.id, "ok"),
        ("thread", thread.id, True),
    ):
        await scores.save_score(
            ScoreCreate(target_type=kind, target_id=target, name=f"n-{kind}", value=value),
            actor="alice",
        )
    datasets = DatasetStore(session_factory)
    ds = await datasets.create_dataset(DatasetCreate(name="d"), actor="alice")
    made = await datasets.add_item_from_run(ds.id, DatasetItemFromRun(run_id=run.id), actor="alice")
    await datasets.update_item(
        ds.id,
        made.items[0].item_id,
        DatasetItemCreate(input={"q": 1}, expected_output=3),
        actor="alice",
    )
    await ExperimentStore(session_factory).create_experiment(
        ExperimentCreate(name="e", dataset_id=ds.id), actor="alice"
    )
    await store.save_run(RunCreate(actor="bob"))

    path = tmp_path / "alice.jsonl.gz"
    counts = await export_to_file(engine, path, ExportScope(actor="alice"))
    assert [counts.rows[k] for k in KINDS] == [1, 3, 1, 2, 1]
    imported = await import_file(other_engine, path, actor="alice")
    assert [imported.rows[k] for k in KINDS] == [1, 3, 1, 2, 1]
    before = await _snapshot(engine, "alice")
    after = await _snapshot(other_engine, "alice")
    for kind in KINDS:
        assert after[kind] == before[kind], kind
    again = await import_file(other_engine, path, actor="alice")
    assert again.total == 0
    assert again.skipped == counts.total
