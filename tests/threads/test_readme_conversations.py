"""The README's Conversations example runs as written and prints what the README says."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def conversations_example() -> str:
    section = README.read_text().split("## Conversations", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README lost its Conversations example"
    return match.group(1)


async def test_readme_conversations_example_runs(database_url: str, tmp_path: Path) -> None:
    script = tmp_path / "conversation.py"
    script.write_text(conversations_example())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, "DATABASE_URL": database_url},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "New research conversation",
        "system: You answer briefly.",
        "user: What is pgvector?",
        "assistant: A vector type and indexes for PostgreSQL.",
        "runs in this thread: ['answer']",
    ]
