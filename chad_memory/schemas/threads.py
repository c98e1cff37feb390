"""Conversations: threads and their messages.

No actor, id or timestamps in these inputs: the owner is who calls (the API's actor, the
library's `actor=` argument), ids and times come from the store.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from chad_memory.schemas.base import (
    Input,
    JsonObject,
    JsonValue,
    Record,
    SafeText,
    ShortText,
    _metadata_field,
)
from chad_memory.vocabulary import MessageRole


class ThreadCreate(Input):
    agent_type: ShortText
    # None means "New {agent_type} conversation".
    title: ShortText | None = None
    model: ShortText | None = None
    provider: ShortText | None = None
    metadata: JsonObject = Field(default_factory=dict)


class ThreadUpdate(Input):
    """A partial update of the fields a person edits; omitted fields stay as they are.

    Both may be left out but not set to null; the OpenAPI document shows them without
    null (SkipJsonSchema), as for RunUpdate.
    """

    title: ShortText | SkipJsonSchema[None] = None
    metadata: JsonObject | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ThreadUpdate:
        # Both columns are NOT NULL: an explicit null is a mistake, not "clear it".
        for name in ("title", "metadata"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; omit it to leave it unchanged")
        return self


class ThreadRecord(Record):
    id: uuid.UUID
    actor: str
    title: str
    agent_type: str
    model: str | None
    provider: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime
    updated_at: datetime


class MessageCreate(Input):
    role: MessageRole
    content: SafeText | None = None
    tool_calls: list[JsonObject] = Field(default_factory=list, max_length=1024)
    artifact_data: JsonValue | None = None
    metadata: JsonObject = Field(default_factory=dict)


class MessageRecord(Record):
    id: uuid.UUID
    thread_id: uuid.UUID
    role: MessageRole
    content: str | None
    tool_calls: list[Any]
    artifact_data: Any | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime
