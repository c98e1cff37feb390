"""Round three (issue 22), export and import: an export is checked before its first byte
and imports into an empty database; an import writes only what the API would accept,
only into the importing actor's data, and names the line of anything it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import InvalidInputError
from chad_memory.archive import ExportScope
from tests.reliability.conftest import serve

EDGE_SINCE = (
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
)


async def test_export_since_an_edge_date_is_422_before_streaming(engine: AsyncEngine) -> None:
    """Class 8: these answered 200 and then broke the stream part-way."""
    async with serve(engine) as api:
        await api.client.post("/runs", json={"name": "mine"}, headers=api.alice)
        for since in EDGE_SINCE:
            answer = await api.client.get("/export", params={"since": since}, headers=api.alice)
            assert answer.status_code == 422, (since, answer.text[:300])
            assert answer.headers["content-type"] == "application/json"
            assert "since" in json.dumps(answer.json()["detail"])
        fine = await api.client.get(
            "/export", params={"since": "2000-01-01T00:00:00Z"}, headers=api.alice
        )
        assert fine.status_code == 200
        kinds = [json.loads(line)["kind"] for line in fine.text.splitlines()]
        assert kinds == ["header", "run"]


def test_library_export_scope_refuses_the_same_instants() -> None:
    for since in EDGE_SINCE:
        with pytest.raises(InvalidInputError, match="since"):
            ExportScope(actor="alice", since=datetime.fromisoformat(since))
    assert ExportScope(since=datetime(2000, 1, 1, tzinfo=UTC)).since == datetime(
        2000, 1, 1, tzinfo=UTC
    )
