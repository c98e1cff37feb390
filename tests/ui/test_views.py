"""What the pages compute without a database: money and durations as shown, the step
tree's order, and the waterfall's bars."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from apps.core_api.ui.views import (
    MIN_BAR,
    SCALE,
    duration,
    tree_order,
    usd,
    waterfall,
)
from chad_memory.schemas import RunRecord, StepRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _step(index: int, parent: uuid.UUID | None = None, **extra: Any) -> StepRecord:
    return StepRecord(
        id=extra.pop("id", uuid.uuid4()),
        run_id=uuid.uuid4(),
        step_index=index,
        parent_step_id=parent,
        name=f"s{index}",
        type=None,
        status="succeeded",
        input=None,
        output=None,
        error=None,
        started_at=extra.get("started_at"),
        completed_at=extra.get("completed_at"),
        duration_ms=extra.get("duration_ms"),
        created_at=T0,
    )


def test_money_and_durations_read_as_people_write_them() -> None:
    assert usd(None) == "—"
    assert usd(Decimal(0)) == "$0"
    assert usd(Decimal("0.00191565")) == "$0.001916"
    assert usd(Decimal("0.0001494")) == "$0.0001494"
    assert usd(Decimal("12.3456")) == "$12.35"
    assert usd(Decimal("1234.5")) == "$1,234.50"
    assert duration(None) == "—"
    assert duration(0) == "0 ms"
    assert duration(0.5) == "0.50 ms"
    assert duration(350) == "350 ms"
    assert duration(6400) == "6.40 s"
    assert duration(61_000) == "1 m 1 s"
    assert duration(3_720_000) == "1 h 2 m"


def test_tree_order_nests_children_and_survives_bad_links() -> None:
    root = _step(0)
    child = _step(2, root.id)
    grandchild = _step(3, child.id)
    sibling = _step(1, root.id)
    orphan = _step(4, uuid.uuid4())  # its parent is on another page, or gone
    a_id, b_id = uuid.uuid4(), uuid.uuid4()
    loop_a = _step(5, b_id, id=a_id)
    loop_b = _step(6, a_id, id=b_id)
    ordered = tree_order([grandchild, orphan, child, root, sibling, loop_b, loop_a])
    assert [(s.step_index, depth) for s, depth in ordered] == [
        (0, 0),
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 0),
        (5, 0),
        (6, 0),
    ]


def test_waterfall_bars_sit_on_the_runs_time_axis() -> None:
    run = RunRecord.model_validate(
        {
            "id": uuid.uuid4(),
            "actor": "a",
            "name": None,
            "agent": None,
            "status": "succeeded",
            "trace_id": None,
            "idempotency_key": None,
            "thread_id": None,
            "tags": [],
            "created_at": T0,
            "updated_at": T0,
            "started_at": T0,
            "completed_at": T0 + timedelta(seconds=10),
            "request_payload": None,
            "result": None,
            "error": None,
        }
    )
    first = _step(0, started_at=T0, completed_at=T0 + timedelta(seconds=5))
    late = _step(1, started_at=T0 + timedelta(seconds=9), duration_ms=1)
    untimed = _step(2)
    fall = waterfall(run, [first, late, untimed], [], total=3)
    bars = {row.step.step_index: (row.x, row.width) for row in fall.rows}
    assert bars[0] == (0.0, SCALE / 2)
    x, width = bars[1]
    assert width == MIN_BAR
    assert x is not None
    assert x + width <= SCALE
    assert bars[2] == (None, None)
    assert fall.span_ms == 10_000
    assert [label for _, label in fall.ticks] == [
        "0 ms",
        "2.50 s",
        "5.00 s",
        "7.50 s",
        "10.00 s",
    ]
