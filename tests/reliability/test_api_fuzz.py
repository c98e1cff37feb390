"""schemathesis against the in-process app: thousands of generated requests, no 5xx.

Every operation in the OpenAPI document gets positive (schema-valid) and negative
(schema-violating) cases, NUL bytes allowed, sent with a real API key, and every default
check runs on each answer (no server error, documented status codes, content types,
headers and response schemas, invalid data rejected). Half of the cases that name a run
are pointed at a run the caller owns, so handlers run past the ownership check.

CHAD_FUZZ_CASES sets the total (default 2,000; `make fuzz` runs more).

A second, stateful phase chains calls: schemathesis infers links from the document (a
run's id from POST /runs into GET /runs/{run_id}, its steps, its LLM calls; a thread's id
into its messages), so generated sequences create data and then read, update and delete
it. Embeddings in that phase are stretched to EMBEDDING_DIM (repeating what was drawn,
zeros and tiny values included), so vectors really reach the store and searches return
hits whose scores are checked against the documented schema (a `null` score fails).
Every answer in both phases is checked against its documented response schema.
Memory calls carry no ids, so schemathesis links none of them: a third sequence adds
generated (stretched) embeddings and then searches with generated queries, so scores of
real hits are checked too. CHAD_FUZZ_SCENARIOS sets how many sequences each of the two
runs (default 25).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.database import create_engine
from chad_memory.settings import Settings, get_settings

TOTAL_CASES = int(os.environ.get("CHAD_FUZZ_CASES", "2000"))
SCENARIOS = int(os.environ.get("CHAD_FUZZ_SCENARIOS", "25"))
STEPS_PER_SCENARIO = 8
DIM = get_settings().embedding_dim
# CI replays the same cases every run (a red build is the code's fault, not luck);
# `make fuzz` sets CHAD_FUZZ_RANDOM=1 to explore new ones.
DERANDOMIZE = not os.environ.get("CHAD_FUZZ_RANDOM")

# Schema-valid requests the service must still refuse (422), because the rule cannot be
# written in JSON Schema: text PostgreSQL cannot store, references that must exist, and
# facts only the database knows. Matched against the 422's detail.
UNSTORABLE_OR_UNKNOWN = (
    "NUL",
    "surrogate",
    "already used with a different request body",  # Idempotency-Key reuse (documented 422)
    "use either offset or cursor",
    "cursor is malformed",
    "step ids not found",
    "dimensions, expected",  # embedding length must equal EMBEDDING_DIM
    "cosine similarity",  # zero, underflowing or overflowing vectors in float4
    "outside float4's range",  # vectors are stored as float4
    "storable range",  # the two instants asyncpg would store as -infinity / infinity
    "JSON values (MAX_JSON_NODES)",  # the node budget of one JSON field
    "nested deeper than",
    # A JSON object inside a query string (metadata=...): OpenAPI documents it with
    # contentMediaType/contentSchema, which generators do not read.
    "must be a JSON object",
    # Rules across parameters: a usage window's order and span, distinct dimensions.
    "must be before",
    "may span at most",
    "different dimensions",
    "too early for the default",
    # Token parts within their totals (OpenTelemetry GenAI: input includes the cache).
    "exceeds prompt_tokens",
    "exceeds 2147483647",
    "exceeds completion_tokens",
    # A JSON number with more decimals than the column keeps (20 for costs, 10 for
    # prices): JSON Schema's multipleOf cannot say it for binary floats.
    "decimal places",
    # A computed cost that overflows the column (a user price times huge token counts).
    "does not fit",
    # Text within its characters but past its UTF-8 bytes (an index entry's size).
    "bytes fit the index",
    # Memory in words: a memory needs a vector or text, text needs an embedder (a fact of
    # the deployment's settings), one version per key in a batch, a step needs its run.
    "needs `embedding` or `content`",
    "no embedder is configured",
    "needs an embedder",
    "needs `embedding` or `query`",
    "appears twice in namespace",
    "step_id without its run_id",
    "step_id needs its run_id",
    # Scores: an unknown target named in a body, a value its config or its name's first
    # use refuses, a target_id without its type, an ordered comparison with a label.
    "target_id: no ",
    "score config",
    "was first used as",
    "target_id needs target_type",
    "compares numbers",
    "a score condition is name",
    # A score config's fields across each other (range for numbers, labels for labels).
    "are for numeric scores only",
    "needs its categories",
    "categories must not repeat",
    "categories are for categorical",
    "must not be above max_value",
    # Datasets: a JSON Lines body that is not items, a version the dataset has not
    # reached, a step without its run; compare across datasets.
    "JSON Lines",
    "version: the dataset is at version",
    "source_step_id needs its source_run_id",
    "step_id: no step",
    "must be on the same dataset",
)


# A dataset's items in bulk are JSON Lines: text, sent as it is generated.
schemathesis.serializer.alias(["application/x-ndjson", "application/jsonl"], "text/plain")

LEAKS = ("Traceback", "sqlalchemy", "asyncpg", "SELECT ", "INSERT INTO", "Bearer ")


def no_internals_leak(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Error answers never carry stack traces, SQL or driver names. 422s echo the
    client's own input, so a marker the request itself contained does not count."""
    if response.status_code < 400:
        return None
    sent = json.dumps(
        [case.body, case.query, case.path_parameters, case.headers], default=str
    ) + str(case.body)
    leaked = [m for m in LEAKS if m in response.text and m not in sent]
    if leaked:
        raise AssertionError(f"error answer leaks {leaked}: {response.text[:300]}")
    return None


def stored_data_acceptance(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """positive_data_acceptance, except for the documented 422s above."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    detail = response.text
    if any(reason in detail for reason in UNSTORABLE_OR_UNKNOWN):
        return None
    raise AssertionError(f"schema-valid request rejected: {detail[:500]}")


# Ours, on top of schemathesis's defaults; response_schema_conformance is among those
# defaults and named here too so that no change of defaults can drop it.
CHECKS = [stored_data_acceptance, no_internals_leak, response_schema_conformance]


def stretch(values: Any) -> Any:
    """A drawn embedding repeated to EMBEDDING_DIM numbers, so it gets past the length
    check and into the store; anything else (a negative case's garbage) as drawn."""
    if not isinstance(values, list) or not values:
        return values
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return values
    return (values * (DIM // len(values) + 1))[:DIM]


def memory_items(case: Case[Any]) -> list[dict[str, Any]]:
    """The item objects of a POST /memory body (none for anything else)."""
    body: Any = case.body
    if case.path != "/memory" or not isinstance(body, dict):
        return []
    items: Any = body.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def stretch_embeddings(case: Case[Any]) -> None:
    body: Any = case.body
    if case.path == "/memory/search" and isinstance(body, dict) and "embedding" in body:
        body["embedding"] = stretch(body["embedding"])
    for item in memory_items(case):
        if "embedding" in item:
            item["embedding"] = stretch(item["embedding"])


@dataclass
class Target:
    schema: schemathesis.schemas.BaseSchema
    headers: dict[str, str]


@pytest.fixture
async def app_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A pooled engine used only inside schemathesis's event-loop thread (where the app
    runs), so its asyncpg connections all belong to that loop; never touched here."""
    eng = create_engine(database_url, pool_size=4, max_overflow=0)
    yield eng
    # Closing would run on this loop, not theirs: drop the pool; DROP DATABASE ... FORCE
    # ends the connections.
    await eng.dispose(close=False)


@pytest.fixture
async def target(
    app_engine: AsyncEngine,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> Target:
    secret = (await ApiKeyStore(session_factory).create_key("fuzzer")).secret
    app = create_app(
        engine=app_engine, settings=Settings(auth_mode="api_key", database_url=database_url)
    )
    schema = await asyncio.to_thread(schemathesis.openapi.from_asgi, "/openapi.json", app)
    schema.config.generation.update(allow_x00=True)
    return Target(schema, {"Authorization": f"Bearer {secret}"})


@pytest.fixture
def stop_lifespans() -> Iterator[None]:
    yield
    asgi.shutdown_lifespans()


def test_generated_requests_never_get_a_server_error(target: Target, stop_lifespans: None) -> None:
    operations = []
    for result in target.schema.get_all_operations():
        assert isinstance(result, Ok), result  # the app's own schema must load whole
        operations.append(result.ok())
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # Hypothesis stops early on operations with small input spaces; a margin makes up for it.
    per_run = math.ceil(TOTAL_CASES * 1.2 / (len(operations) * len(modes)))
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    owned: dict[str, str] = {}
    unsatisfiable: list[str] = []
    started = time.monotonic()

    def own_run() -> str:
        if "id" not in owned:
            created = target.schema.app  # the app object; calls go through schemathesis
            assert created is not None
            response = asgi.get_client(created).post(
                "/runs", json={"name": "fuzz"}, headers=target.headers
            )
            assert response.status_code == 201, response.text
            owned["id"] = response.json()["id"]
        return owned["id"]

    def send(case: Case[Any]) -> None:
        assert case.meta is not None
        positive = case.meta.generation.mode.is_positive
        run_id = case.path_parameters.get("run_id") if case.path_parameters else None
        if positive and isinstance(run_id, str) and run_id[:1] in "01234567":
            case.path_parameters["run_id"] = own_run()
        # A negative case that breaks the headers (Authorization among them) goes as made.
        header_info = case.meta.components.get(ParameterLocation.HEADER)
        broken_headers = header_info is not None and not header_info.mode.is_positive
        response = case.call_and_validate(
            headers=None if broken_headers else target.headers,
            excluded_checks=[positive_data_acceptance],
            additional_checks=CHECKS,
        )
        # The caller's own key is never echoed back, on any answer.
        assert target.headers["Authorization"].split()[1] not in response.text
        sent[case.operation.label] += 1
        statuses[response.status_code] += 1
        if case.method.upper() == "DELETE" and response.status_code == 204 and run_id:
            owned.clear()

    for operation in operations:
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=per_run,
                deadline=None,
                database=None,
                derandomize=DERANDOMIZE,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Case[Any]) -> None:
                send(case)

            try:
                run()
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (e.g. GET /health).
                assert mode is GenerationMode.NEGATIVE, operation.label
                unsatisfiable.append(operation.label)

    total = sum(sent.values())
    print(
        f"\n[fuzz] {total} cases over {len(operations)} operations in "
        f"{time.monotonic() - started:.0f}s; statuses {dict(sorted(statuses.items()))};"
        f" no negative cases for {unsatisfiable}"
    )
    assert not [s for s in statuses if s >= 500]
    assert total >= TOTAL_CASES, sent


def test_stateful_sequences_conform_to_the_documented_schemas(
    target: Target, stop_lifespans: None
) -> None:
    """Linked calls (create, then read, update, list, delete what was created) with every
    answer checked against its documented schema; no server errors."""
    statuses: Counter[int] = Counter()
    calls: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    # Valid calls only: the stateless phase covers invalid ones; here the point is to get
    # deep (created ids used by later calls).
    target.schema.config.generation.update(modes=[GenerationMode.POSITIVE])

    class Machine(target.schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case[Any]) -> None:
            stretch_embeddings(case)

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": target.headers}

        def validate_response(
            self,
            response: Response,
            case: Case[Any],
            additional_checks: list[Any] | None = None,
            **kwargs: Any,
        ) -> None:
            statuses[response.status_code] += 1
            calls[case.operation.label] += 1
            try:
                case.validate_response(
                    response,
                    excluded_checks=[positive_data_acceptance],
                    additional_checks=CHECKS,
                    transport_kwargs=kwargs,
                )
                assert target.headers["Authorization"].split()[1] not in response.text
            except Exception as exc:
                # Noted here: a failure must fail the test even if Hypothesis, replaying
                # it against a database that has moved on, ends in Flaky instead.
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {exc}")
                raise
            assert target.headers["Authorization"].split()[1] not in response.text

    try:
        Machine.run(
            settings=settings(
                max_examples=SCENARIOS,
                stateful_step_count=STEPS_PER_SCENARIO,
                deadline=None,
                database=None,
                derandomize=DERANDOMIZE,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
    except Flaky as exc:
        # Links draw on ids the app returned, which differ each time a sequence is
        # replayed, so Hypothesis can stop with "inconsistent data generation"; the
        # schemathesis runner restarts then. What ran was checked (failures above).
        print(f"\n[fuzz stateful] stopped early: {type(exc).__name__}")
    assert not failures, failures[:3]
    total = sum(statuses.values())
    linked = sum(n for label, n in calls.items() if "{" in label)
    print(
        f"\n[fuzz stateful] {total} calls in {SCENARIOS} scenarios in "
        f"{time.monotonic() - started:.0f}s; {linked} on routes with ids;"
        f" statuses {dict(sorted(statuses.items()))}"
    )
    assert not [s for s in statuses if s >= 500]
    # The links work: ids created earlier are found later (2xx on routes that name one).
    assert linked > 0
    assert any(200 <= s < 300 for s in statuses)


def test_memory_added_then_searched_gives_documented_scores(
    target: Target, stop_lifespans: None
) -> None:
    """POST /memory with generated items, then POST /memory/search with a generated query,
    both stretched to EMBEDDING_DIM: every hit's score must be a number (the document
    says so); a zero or underflowing vector stored would have scored `null`."""
    operations = {}
    for result in target.schema.get_all_operations():
        assert isinstance(result, Ok)
        operation = result.ok()
        operations[operation.label] = operation
    add = operations["POST /memory"].as_strategy(generation_mode=GenerationMode.POSITIVE)
    search = operations["POST /memory/search"].as_strategy(generation_mode=GenerationMode.POSITIVE)
    statuses: Counter[int] = Counter()
    scored = 0

    @settings(
        max_examples=SCENARIOS,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(pair=st.tuples(add, search))
    def run(pair: tuple[Case[Any], Case[Any]]) -> None:
        nonlocal scored
        # One sound vector each time, so there is always something to find.
        sound = [math.sin(i + 1.0) for i in range(DIM)]
        stored = pair[0].operation.Case(body={"items": [{"embedding": sound}]})
        # And a plain search that sees whatever the generated add stored.
        everything = pair[1].operation.Case(body={"embedding": sound, "k": 100})
        for case in (stored, *pair, everything):
            stretch_embeddings(case)
            for item in memory_items(case):
                item.pop("run_id", None)  # a random id names no run: 404
            response = case.call_and_validate(
                headers=target.headers,
                excluded_checks=[positive_data_acceptance],
                additional_checks=CHECKS,
            )
            statuses[response.status_code] += 1
            if case.path == "/memory/search" and response.status_code == 200:
                scored += len(response.json()["items"])

    run()
    print(f"\n[fuzz memory] statuses {dict(sorted(statuses.items()))}; hits scored {scored}")
    assert not [s for s in statuses if s >= 500]
    assert statuses[201] > 0  # generated vectors were stored
    assert scored > 0  # and found again, each with a documented score
