"""What a finished LangChain `Run` maps to: plain JSON values, names, statuses,
durations, token counts and the responding model, as the tracer records them.

Kept apart from the tracer so the mapping (which follows LangChain's message and usage
shapes) can change without touching how and when the tracer writes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
import uuid
from decimal import Decimal
from enum import Enum
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.tracers.schemas import Run
from pydantic import BaseModel

from chad_memory.validation import text_problem

MAX_DEPTH = 40
MAX_NAME = 512


def plain(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON: messages and pydantic models as their fields, never a repr.

    LangChain's serialised form ({"lc": 1, "type": "constructor", ...}) becomes the
    object's fields with its type; strings lose NUL characters (PostgreSQL refuses them);
    non-finite floats become null; objects that are none of these become their type name.
    """
    if depth > MAX_DEPTH:
        return "…"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, BaseMessage):
        data = value.model_dump(exclude_none=True)
        return {k: plain(v, depth + 1) for k, v in data.items() if v not in ({}, [], "")}
    if isinstance(value, BaseModel):
        return plain(value.model_dump(exclude_none=True), depth + 1)
    if isinstance(value, dict):
        if value.get("lc") == 1 and value.get("type") == "constructor" and "kwargs" in value:
            kwargs = plain(value["kwargs"], depth + 1)
            kind = (value.get("id") or ["object"])[-1]
            return {"type": kwargs.pop("type", kind), **kwargs}
        return {str(k).replace("\x00", "\ufffd"): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Enum):
        return plain(value.value, depth + 1)
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value[:65536]).decode(), "size": len(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value), depth + 1)
    return {"type": f"{type(value).__module__}.{type(value).__qualname__}"}


def short_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).replace("\x00", "")[:MAX_NAME]
    return text if text and text_problem(text) is None else None


def clean_text(value: Any) -> str | None:
    return None if value is None else str(value).replace("\x00", "\ufffd")


def run_metadata(run: Run) -> dict[str, Any]:
    found = (run.extra or {}).get("metadata") or {}
    return plain(found) if isinstance(found, dict) else {}


def step_type(run: Run) -> str:
    if run.run_type in ("llm", "chat_model") and "messages" in (run.inputs or {}):
        return "chat_model"
    return str(run.run_type)


def run_status(run: Run) -> str:
    return "failed" if run.error else "succeeded"


def duration_ms(run: Run) -> float | None:
    if run.end_time is None or run.start_time is None:
        return None
    return max(0.0, (run.end_time - run.start_time).total_seconds() * 1000)


def token_usage(run: Run) -> dict[str, int]:
    """Token counts summed over the call's generations (AIMessage.usage_metadata)."""
    totals = {"input": 0, "output": 0, "total": 0, "cache_read": 0, "cache_write": 0}
    totals["reasoning"] = 0
    generations = (run.outputs or {}).get("generations") or []
    for batch in generations:
        for generation in batch or []:
            message = plain(generation.get("message")) if isinstance(generation, dict) else None
            usage = message.get("usage_metadata") if isinstance(message, dict) else None
            if not isinstance(usage, dict):
                continue
            inputs = usage.get("input_token_details") or {}
            outputs = usage.get("output_token_details") or {}
            for name, value in (
                ("input", usage.get("input_tokens")),
                ("output", usage.get("output_tokens")),
                ("total", usage.get("total_tokens")),
                ("cache_read", inputs.get("cache_read")),
                ("cache_write", inputs.get("cache_creation")),
                ("reasoning", outputs.get("reasoning")),
            ):
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    totals[name] += value
    return totals


def response_model(run: Run) -> str | None:
    """The model that answered, as the provider named it (`response_metadata.model_name`
    of the first generation that has one, else `llm_output.model_name`)."""
    outputs = run.outputs or {}
    for batch in outputs.get("generations") or []:
        for generation in batch or []:
            message = plain(generation.get("message")) if isinstance(generation, dict) else None
            found = message.get("response_metadata") if isinstance(message, dict) else None
            if isinstance(found, dict) and isinstance(found.get("model_name"), str):
                return short_text(found["model_name"])
    llm_output = outputs.get("llm_output")
    if isinstance(llm_output, dict) and isinstance(llm_output.get("model_name"), str):
        return short_text(llm_output["model_name"])
    return None


def response_of(run: Run) -> Any:
    generations = (run.outputs or {}).get("generations") or []
    messages = [
        plain(g.get("message") or {"text": g.get("text")})
        for batch in generations
        for g in batch or []
        if isinstance(g, dict)
    ]
    return {"generations": messages} if messages else plain(run.outputs)
