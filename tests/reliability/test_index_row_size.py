"""Text within its documented limit always fits the index it is part of (issue 22, class 4).

A b-tree entry holds at most 2,704 bytes. An LLM call's provider and model (both in the
usage rollups' key, next to the actor) of 512 four-byte characters each made an entry
of over 5 kB: PostgreSQL refused it (SQLSTATE 54000) and the API answered 500, on
`POST /runs/{id}/llm-calls`, OTLP chat spans and `PUT /prices`. Texts now have a limit
in UTF-8 bytes as well as characters; the tests store the largest legal values under
the longest actor (255 four-byte characters) to show they fit, and one byte more is a
422 (or a refused span). A 54000 from elsewhere is translated too.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import ApiKeyStore, InvalidInputError, PostgresStore, RunCreate
from chad_memory.database import get_session_factory
from chad_memory.models import Run
from chad_memory.schemas import MAX_KEY_TEXT_BYTES, MAX_TEXT_BYTES
from chad_memory.settings import get_settings
from chad_memory.stores.transactions import transaction
from tests.reliability.conftest import EngineMaker, Served, serve


def four_byte(count: int, seed: int) -> str:
    """Random CJK Extension B characters (four bytes each in UTF-8). Random, because
    PostgreSQL compresses an index entry that compresses well (one character repeated
    would fit any index) and an attacker's text need not."""
    rng = random.Random(seed)
    return "".join(chr(rng.randrange(0x20000, 0x2A6D7)) for _ in range(count))


def three_byte(count: int, seed: int) -> str:
    """Random CJK Unified Ideographs (three bytes each)."""
    rng = random.Random(seed)
    return "".join(chr(rng.randrange(0x4E00, 0xA000)) for _ in range(count))


LONGEST_ACTOR = four_byte(255, 1)
AT_KEY_LIMIT = four_byte(MAX_KEY_TEXT_BYTES // 4, 2)  # 192 characters, 768 bytes
OVER_KEY_LIMIT = AT_KEY_LIMIT + "a"
AT_TEXT_LIMIT = three_byte(512, 3)  # 1,536 bytes: any 512 BMP characters fit
OVER_TEXT_LIMIT = four_byte(MAX_TEXT_BYTES // 4, 4) + "a"
ATTACK = four_byte(512, 5)  # the reported input: 512 characters, 2,048 bytes


@pytest.fixture
async def served(make_engine: EngineMaker) -> AsyncIterator[tuple[Served, dict[str, str]]]:
    """The app, and the bearer header of the longest possible actor name."""
    engine, _ = make_engine()
    async with serve(engine) as app:
        secret = (await ApiKeyStore(get_session_factory(engine)).create_key(LONGEST_ACTOR)).secret
        yield app, {"Authorization": f"Bearer {secret}"}


async def _run(api: Served, headers: dict[str, str]) -> str:
    answer = await api.client.post("/runs", json={}, headers=headers)
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def _price(provider: str, pattern: str) -> dict[str, Any]:
    return {
        "provider": provider,
        "model_pattern": pattern,
        "starts_at": "2026-01-01T00:00:00Z",
        "input_mtok": "1",
        "output_mtok": "2",
    }


async def test_provider_and_model_at_the_byte_limit_are_stored_past_it_422(
    served: tuple[Served, dict[str, str]],
) -> None:
    api, longest = served
    run_id = await _run(api, longest)
    calls = f"/runs/{run_id}/llm-calls"
    # The largest legal pair is stored: a call, its usage rollups, a price.
    fits = {"provider": AT_KEY_LIMIT, "model": AT_KEY_LIMIT, "prompt_tokens": 10}
    answer = await api.client.post(calls, json=fits, headers=longest)
    assert answer.status_code == 201, answer.text
    answer = await api.client.put(
        "/prices", json=_price(AT_KEY_LIMIT, AT_KEY_LIMIT), headers=longest
    )
    assert answer.status_code == 200, answer.text
    usage = await api.client.get("/analytics/usage", params={"group_by": "model"}, headers=longest)
    assert usage.status_code == 200, usage.text
    assert [row["group"]["model"] for row in usage.json()["rows"]] == [AT_KEY_LIMIT]

    for provider, model in [(ATTACK, ATTACK), (OVER_KEY_LIMIT, "m"), ("p", OVER_KEY_LIMIT)]:
        answer = await api.client.post(
            calls, json={"provider": provider, "model": model}, headers=longest
        )
        assert answer.status_code == 422, answer.text[:300]
        assert f"at most {MAX_KEY_TEXT_BYTES} bytes" in answer.text
        answer = await api.client.put("/prices", json=_price(provider, model), headers=longest)
        assert answer.status_code == 422, answer.text[:300]
        assert f"at most {MAX_KEY_TEXT_BYTES} bytes" in answer.text
    stored = await api.client.get(calls, headers=longest)
    assert [c["model"] for c in stored.json()] == [AT_KEY_LIMIT]


async def test_an_otlp_chat_span_past_the_byte_limit_is_refused_alone(
    served: tuple[Served, dict[str, str]],
) -> None:
    api, longest = served
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    trace = uuid.uuid4().bytes
    for i, model in enumerate([AT_KEY_LIMIT, ATTACK, OVER_KEY_LIMIT], start=1):
        span = scope.spans.add(name=f"chat{i}", trace_id=trace, span_id=i.to_bytes(8, "big"))
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        for key, value in [
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", AT_KEY_LIMIT),
            ("gen_ai.request.model", model),
        ]:
            span.attributes.add(key=key).value.string_value = value
    answer = await api.client.post(
        "/v1/traces",
        content=request.SerializeToString(),
        headers={**longest, "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.content[:300]
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 2
    assert f"at most {MAX_KEY_TEXT_BYTES} bytes" in response.partial_success.error_message
    [run] = (
        await api.client.get("/runs", params={"trace_id": trace.hex()}, headers=longest)
    ).json()["items"]
    [call] = (await api.client.get(f"/runs/{run['id']}/llm-calls", headers=longest)).json()
    assert call["model"] == AT_KEY_LIMIT


async def test_every_short_text_in_an_index_fits_at_its_byte_limit(
    served: tuple[Served, dict[str, str]],
) -> None:
    """The texts indexed next to the actor alone: a run's name, trace id and tags; an
    embedding's namespace and source id; an idempotency key (HTTP headers are ASCII, so
    through the library)."""
    api, longest = served
    run = {"name": AT_TEXT_LIMIT, "trace_id": AT_TEXT_LIMIT, "tags": [AT_TEXT_LIMIT]}
    answer = await api.client.post("/runs", json=run, headers=longest)
    assert answer.status_code == 201, answer.text[:300]
    dim = get_settings().embedding_dim
    item = {
        "embedding": [1.0] * dim,
        "content": "t",
        "namespace": AT_TEXT_LIMIT,
        "source_id": AT_TEXT_LIMIT,
    }
    answer = await api.client.post("/memory", json={"items": [item]}, headers=longest)
    assert answer.status_code == 201, answer.text[:300]

    for field in ("name", "trace_id"):
        answer = await api.client.post("/runs", json={field: OVER_TEXT_LIMIT}, headers=longest)
        assert answer.status_code == 422, answer.text[:300]
        assert f"at most {MAX_TEXT_BYTES} bytes" in answer.text
    answer = await api.client.post(
        "/memory", json={"items": [{**item, "namespace": OVER_TEXT_LIMIT}]}, headers=longest
    )
    assert answer.status_code == 422

    store = PostgresStore(get_session_factory(api.app.state.engine))
    keyed = await store.save_run(RunCreate(actor=LONGEST_ACTOR, idempotency_key=AT_TEXT_LIMIT))
    assert keyed.idempotency_key == AT_TEXT_LIMIT
    with pytest.raises(ValidationError, match=f"at most {MAX_TEXT_BYTES} bytes"):
        RunCreate(actor=LONGEST_ACTOR, idempotency_key=OVER_TEXT_LIMIT)


async def test_an_index_entry_too_large_is_a_typed_error_not_a_500(
    make_engine: EngineMaker,
) -> None:
    """SQLSTATE 54000 from PostgreSQL itself (the models bypassed) is InvalidInputError."""
    engine: AsyncEngine
    engine, _ = make_engine()
    with pytest.raises(InvalidInputError, match="too long to be indexed"):
        async with transaction(get_session_factory(engine), "test") as session:
            session.add(Run(id=uuid.uuid4(), actor=LONGEST_ACTOR, name=ATTACK))
