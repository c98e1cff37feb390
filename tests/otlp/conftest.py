"""The in-process app with two actors (alice, bob), as in tests/api."""

from tests.api.conftest import api

__all__ = ["api"]
