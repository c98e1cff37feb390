"""The in-process app with two actors (alice, bob), as in tests/api, and the real openai-v2
instrumentation for tests that need one."""

from collections.abc import Iterator

import pytest

from tests.api.conftest import api
from tests.otlp.instrumented import Instrumented, instrumented_openai

__all__ = ["api"]


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch) -> Iterator[Instrumented]:
    """The real openai-v2 instrumentation, sending content as log events only."""
    with instrumented_openai(monkeypatch) as found:
        yield found
