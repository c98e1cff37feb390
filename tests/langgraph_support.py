"""A deterministic bag-of-words embedding for LangGraph store tests: texts sharing words
point the same way, so search results are predictable without a model."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

from langgraph.store.base import IndexConfig

from chad_memory.settings import get_settings

DIM = get_settings().embedding_dim


def embed_text(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[zlib.crc32(word.encode()) % DIM] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    if not any(vector):
        vector[0] = 1.0  # texts without words still get a valid (non-zero) vector
    return [v / norm for v in vector]


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    return [embed_text(t) for t in texts]


def index_config(fields: list[str] | None = None) -> IndexConfig:
    return {"dims": DIM, "embed": embed_texts, "fields": fields}
