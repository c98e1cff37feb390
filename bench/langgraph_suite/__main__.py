"""LangGraph's own store tests against ChadMemoryStore, with only the fixtures changed.

    .venv/bin/python -m bench.langgraph_suite --langgraph <checkout of langchain-ai/langgraph>

Copies `libs/checkpoint-postgres/tests/test_async_store.py` and `embed_test_utils.py`
from the checkout into a work directory, replaces the file's store-building fixtures
(`store`, `_create_vector_store`, `_create_pool_store`) with ones that build
ChadMemoryStore (`fixtures.py`, as its conftest), and runs it with pytest on a server
with pgvector (`--admin-url`, default: TEST_DATABASE_URL). LangGraph's file is never
kept in this repository. For the peer's figure, run the untouched file with its own
conftest (pointed at the same server) in a venv with langgraph-checkpoint-postgres.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = Path("libs/checkpoint-postgres/tests")

STORE = """@pytest.fixture(scope="function", params=["chad"])
async def store(request) -> AsyncIterator[AsyncPostgresStore]:
    ttl_config = {
        "default_ttl": TTL_MINUTES,
        "refresh_on_read": True,
        "sweep_interval_minutes": TTL_MINUTES / 2,
    }
    async with chad_store(ttl=ttl_config) as store:
        await store.start_ttl_sweeper()
        yield store
        await store.stop_ttl_sweeper()
"""
POOL_STORE = """@asynccontextmanager
async def _create_pool_store() -> AsyncIterator[AsyncPostgresStore]:
    async with chad_store() as store:
        yield store
"""
VECTOR_STORE = """@asynccontextmanager
async def _create_vector_store(
    vector_type: str,
    distance_type: str,
    fake_embeddings: CharacterEmbeddings,
    text_fields: list[str] | None = None,
) -> AsyncIterator[AsyncPostgresStore]:
    index = {"dims": fake_embeddings.dims, "embed": fake_embeddings, "fields": text_fields}
    async with chad_store(index=index) as store:
        yield store
"""
FIXTURES = {"store": STORE, "_create_pool_store": POOL_STORE, "_create_vector_store": VECTOR_STORE}
IMPORTS = {
    "from psycopg import AsyncConnection\n": "",
    # Used only by the test that counts the peer's psycopg checkouts.
    "from langgraph.checkpoint.postgres import _ainternal\n": "_ainternal = None\n",
    "from langgraph.store.postgres import AsyncPostgresStore\n": (
        "from tests.conftest import LGStore as AsyncPostgresStore, chad_store\n"
    ),
}


def with_our_fixtures(source: str) -> str:
    """LangGraph's test file with its store-building fixtures swapped for ours."""
    lines = source.splitlines(keepends=True)
    spans = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in FIXTURES:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
            spans.append((start, node.end_lineno or node.lineno, FIXTURES[node.name]))
    if len(spans) != len(FIXTURES):
        raise SystemExit("the test file's fixtures changed: update bench/langgraph_suite")
    for start, end, replacement in sorted(spans, reverse=True):
        lines[start:end] = [replacement]
    patched = "".join(lines)
    for old, new in IMPORTS.items():
        patched = patched.replace(old, new)
    return patched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langgraph", type=Path, required=True)
    parser.add_argument("--admin-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--dim", type=int, default=500, help="CharacterEmbeddings' dims")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    if not args.admin_url:
        raise SystemExit("--admin-url (or TEST_DATABASE_URL) names the server to use")
    with tempfile.TemporaryDirectory(prefix="langgraph-suite-") as work:
        tests = Path(work) / "tests"
        tests.mkdir()
        (tests / "__init__.py").write_text("")
        shutil.copy(args.langgraph / TESTS / "embed_test_utils.py", tests)
        shutil.copy(HERE / "fixtures.py", tests / "conftest.py")
        source = (args.langgraph / TESTS / "test_async_store.py").read_text()
        (tests / "test_async_store.py").write_text(with_our_fixtures(source))
        env = dict(
            os.environ,
            EMBEDDING_DIM=str(args.dim),
            LG_ADMIN_URL=args.admin_url,
            PYTHONPATH=work,
        )
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf"]
        command += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
        command += ["tests/test_async_store.py", *args.pytest_args]
        return subprocess.run(command, cwd=work, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
