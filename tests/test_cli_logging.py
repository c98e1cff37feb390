"""LOG_LEVEL reaches the service's own loggers (the access log), not only uvicorn's."""

from __future__ import annotations

import logging

import pytest

from chad_memory.cli import log_level
from chad_memory.settings import get_settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [("warning", logging.WARNING), ("DEBUG", logging.DEBUG), ("info", logging.INFO)],
)
def test_log_level_follows_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("LOG_LEVEL", value)
    get_settings.cache_clear()
    try:
        assert log_level() == expected
    finally:
        get_settings.cache_clear()


def test_an_unknown_level_name_falls_back_to_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    get_settings.cache_clear()
    try:
        assert log_level() == logging.INFO
    finally:
        get_settings.cache_clear()
