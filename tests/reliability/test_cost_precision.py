"""Issue 10, class 11: a cost is stored exactly as sent, or refused; never rounded, and
never answered in exponent notation (which the input itself refuses)."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, localcontext

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import LLMCallCreate
from chad_memory.schemas import EXACT as EXACT_CONTEXT
from tests.reliability.conftest import serve

# Every form the input pattern accepts, at its edges: 1 to 10 integer digits, up to 20
# decimals. Each must come back as the same number, written plainly.
EXACT = [
    "0.000000001",
    "0.00000000000000000001",
    "0.12345678901234567891",
    "9999999999.99999999999999999999",
    "0",
    "0.0",
    "1",
    "100",
]
PLAIN = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,20})?$")


async def test_costs_are_stored_exactly_and_answered_plainly(engine: AsyncEngine) -> None:
    async with serve(engine) as api:
        c, h = api.client, api.alice
        run = (await c.post("/runs", json={}, headers=h)).json()["id"]
        for sent in EXACT:
            made = await c.post(f"/runs/{run}/llm-calls", json={"cost_usd": sent}, headers=h)
            assert made.status_code == 201, made.text
            answered = made.json()["cost_usd"]
            assert PLAIN.match(answered), answered
            assert Decimal(answered) == Decimal(sent)
        stored = (await c.get(f"/runs/{run}/llm-calls", headers=h)).json()
        assert [Decimal(x["cost_usd"]) for x in stored] == [Decimal(s) for s in EXACT]
        assert all(PLAIN.match(x["cost_usd"]) for x in stored)
        # What comes back is accepted back, unchanged.
        for x in stored:
            again = await c.post(
                f"/runs/{run}/llm-calls", json={"cost_usd": x["cost_usd"]}, headers=h
            )
            assert again.json()["cost_usd"] == x["cost_usd"]
        total = (await c.get(f"/runs/{run}/stats", headers=h)).json()["cost_usd"]
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", total), total
        with localcontext(EXACT_CONTEXT):
            assert Decimal(total) == 2 * sum(Decimal(s) for s in EXACT)


async def test_more_precision_than_stored_is_refused(engine: AsyncEngine) -> None:
    async with serve(engine) as api:
        c, h = api.client, api.alice
        run = (await c.post("/runs", json={}, headers=h)).json()["id"]
        for body in (
            '{"cost_usd": "0.000000000000000000001"}',
            '{"cost_usd": 1e-21}',
            '{"cost_usd": 0.0000000000000000000001}',
        ):
            answer = await c.post(
                f"/runs/{run}/llm-calls",
                content=body,
                headers={**h, "Content-Type": "application/json"},
            )
            assert answer.status_code == 422, body
        assert (await c.get(f"/runs/{run}/llm-calls", headers=h)).json() == []


def test_library_refuses_what_it_cannot_store() -> None:
    with pytest.raises(ValidationError, match="decimal places"):
        LLMCallCreate(run_id=uuid.uuid4(), cost_usd=Decimal("1E-21"))
    exact = LLMCallCreate(run_id=uuid.uuid4(), cost_usd=Decimal("1E-20"))
    assert exact.cost_usd == Decimal("0.00000000000000000001")
