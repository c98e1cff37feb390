"""Prices over HTTP and from the CLI: set, list, delete, recompute."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from chad_memory import LLMCallCreate, PostgresStore, PriceStore, RunCreate
from tests.api.conftest import Api

PRICE = {
    "provider": "openai",
    "model_pattern": "gpt-4o*",
    "starts_at": "2026-01-01T00:00:00Z",
    "input_mtok": "2.5",
    "cached_input_mtok": "1.25",
    "output_mtok": "10",
}


async def test_prices_over_http(api: Api) -> None:
    c, h = api.client, api.alice
    run = (await c.post("/runs", json={}, headers=h)).json()["id"]
    before = await c.post(
        f"/runs/{run}/llm-calls",
        json={"provider": "openai", "model": "gpt-4o-mini", "prompt_tokens": 1_000_000},
        headers=h,
    )
    assert before.json()["price_ref"].startswith("genai-prices")

    made = await c.put("/prices", json=PRICE, headers=h)
    assert made.status_code == 200, made.text
    price = made.json()
    assert (price["actor"], price["input_mtok"]) == ("alice", "2.5")
    assert price["cache_write_mtok"] is None
    again = await c.put("/prices", json={**PRICE, "output_mtok": "12"}, headers=h)
    assert again.json()["id"] == price["id"]
    assert [p["id"] for p in (await c.get("/prices", headers=h)).json()] == [price["id"]]
    assert (await c.get("/prices", headers=api.bob)).json() == []

    after = await c.post(
        f"/runs/{run}/llm-calls",
        json={"provider": "openai", "model": "gpt-4o-mini", "prompt_tokens": 1_000_000},
        headers=h,
    )
    assert (after.json()["cost_usd"], after.json()["price_id"]) == ("2.5", price["id"])
    changed = await c.post("/prices/recompute", json={"since": "2026-01-01T00:00:00Z"}, headers=h)
    # the call priced before the price existed
    assert changed.json() == {"seen": 2, "changed": 1, "next_cursor": None}
    costs = [x["cost_usd"] for x in (await c.get(f"/runs/{run}/llm-calls", headers=h)).json()]
    assert costs == ["2.5", "2.5"]

    for bad in (
        {**PRICE, "input_mtok": "0.00000000001"},  # more decimals than stored
        {**PRICE, "input_mtok": "-1"},
        {**PRICE, "model_pattern": ""},
        {**PRICE, "actor": "bob"},  # the owner is the caller
    ):
        assert (await c.put("/prices", json=bad, headers=h)).status_code == 422, bad
    assert (await c.delete(f"/prices/{price['id']}", headers=api.bob)).status_code == 403
    assert (await c.delete(f"/prices/{price['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"/prices/{price['id']}", headers=h)).status_code == 404


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


async def test_prices_cli(database_url: str, session_factory: Any) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    store = PostgresStore(session_factory)
    run = await store.save_run(RunCreate(actor="dave"))
    call = await store.save_llm_call(
        LLMCallCreate(run_id=run.id, model="house-model", prompt_tokens=2_000_000)
    )
    assert call.cost_usd is None  # no price known yet

    code, out = await cli(
        env, "prices", "set", "--model", "house-*", "--input", "0.5", "--output", "1",
        "--starts-at", "2020-01-01",
    )  # fmt: skip
    assert code == 0, out
    price_id = out.strip().splitlines()[-1].split("\t")[0]
    code, out = await cli(env, "prices", "list", "--actor", "dave")
    assert code == 0, out
    assert f"{price_id}\t*\t*\thouse-*\t2020-01-01T00:00:00+00:00\t0.5\t\t\t1" in out
    code, out = await cli(env, "prices", "recompute", "--since", "30d")
    assert (code, out.strip().splitlines()[-1]) == (0, "1"), out
    [priced] = await store.get_llm_calls(run.id)
    assert priced.cost_usd == 1
    assert priced.cost_source == "table"

    code, out = await cli(env, "prices", "set", "--model", "m", "--input", "x", "--output", "1")
    assert code == 2
    assert "not a decimal" in out
    code, out = await cli(env, "prices", "delete", price_id, "--actor", "dave")
    assert code == 1
    assert "another actor" in out
    code, out = await cli(env, "prices", "delete", price_id)
    assert code == 0, out
    assert await PriceStore(session_factory).list_prices(actor="dave") == []
