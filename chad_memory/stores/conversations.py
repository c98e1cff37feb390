"""Which thread holds an actor's OTLP conversation (`gen_ai.conversation.id` / `session.id`).

The thread's id is derived from the actor and the conversation id, so every export of a
conversation names the same thread without a lookup, and the same conversation id of
two actors names two threads.
"""

from __future__ import annotations

import uuid

# uuid5 namespace of conversation threads (a fixed, arbitrary uuid).
CONVERSATION_NAMESPACE = uuid.UUID("0d8e1f3a-6f5c-5b9a-9a44-6d0c7c2e9b11")


def conversation_thread_id(actor: str, conversation_id: str) -> uuid.UUID:
    return uuid.uuid5(CONVERSATION_NAMESPACE, f"{actor}\x00{conversation_id}")
