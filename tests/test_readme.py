"""The README's library example runs as written, against a real migrated database."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def library_example() -> str:
    text = README.read_text()
    section = text.split("## Library in five minutes", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README lost its library example"
    return match.group(1)


async def run_example(source: str, database_url: str, tmp_path: Path) -> list[str]:
    """A README example run as a script against `database_url`: the lines it prints."""
    script = tmp_path / "example.py"
    script.write_text(source)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, "DATABASE_URL": database_url},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_readme_library_example_runs(database_url: str, tmp_path: Path) -> None:
    lines = await run_example(library_example(), database_url, tmp_path)
    assert lines == [
        "1500 tokens, $0.00036, 2 steps",
        "page: 2 steps, 1 LLM call(s)",
        "alice has 1 demo run(s)",
        "best hit: 'hello' (score 1.000)",
    ]


async def test_readme_any_loop_example_runs(database_url: str, tmp_path: Path) -> None:
    """Three `asyncio.run` calls on the default session factory, as the README shows."""
    section = README.read_text().split("**Any event loop, any thread.**", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README lost its any-loop example"
    assert await run_example(match.group(1), database_url, tmp_path) == ["2"]
