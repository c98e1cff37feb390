"""JSON answers serialised once, by the record's own pydantic serializer.

A route that returns a model makes FastAPI validate it again against `response_model`
and then serialise it; for records the library has just validated, that second pass
only repeats work. Routes keep `response_model` (it documents the answer in
/openapi.json) and return one of these, which FastAPI sends as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Response
from pydantic import BaseModel, TypeAdapter


class JsonAnswer(Response):
    media_type = "application/json"


def answer(
    value: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> JsonAnswer:
    return JsonAnswer(value.model_dump_json(), status_code, headers)


def answer_list(
    adapter: TypeAdapter[list[Any]],
    items: Sequence[Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> JsonAnswer:
    return JsonAnswer(adapter.dump_json(list(items)), status_code, headers)
