"""The README's LangChain and LangGraph examples run as written, on a real migrated database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_readme import run_example

README = Path(__file__).resolve().parent.parent / "README.md"


def examples() -> list[str]:
    text = README.read_text()
    section = text.split("## LangChain and LangGraph", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(found) == 2, "README lost its LangChain / LangGraph examples"
    return found


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (
            0,
            [
                "Paris: run RunnableSequence succeeded",
                "steps: prompt:ChatPromptTemplate, chat_model:GenericFakeChatModel",
                "llm call: genericfakechatmodel, 10 tokens",
            ],
        ),
        (1, ["recalled: My hiking boots are size 42", "namespaces: [('memories', 'u1')]"]),
    ],
)
async def test_readme_integration_example_runs(
    database_url: str, tmp_path: Path, index: int, expected: list[str]
) -> None:
    assert await run_example(examples()[index], database_url, tmp_path) == expected
