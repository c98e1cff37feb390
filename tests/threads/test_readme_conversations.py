"""The README's Conversations example runs as written and prints what the README says."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_readme import run_example

README = Path(__file__).resolve().parents[2] / "README.md"


def conversations_example() -> str:
    section = README.read_text().split("## Conversations", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README lost its Conversations example"
    return match.group(1)


async def test_readme_conversations_example_runs(database_url: str, tmp_path: Path) -> None:
    assert await run_example(conversations_example(), database_url, tmp_path) == [
        "New research conversation",
        "system: You answer briefly.",
        "user: What is pgvector?",
        "assistant: A vector type and indexes for PostgreSQL.",
        "runs in this thread: ['answer']",
    ]
