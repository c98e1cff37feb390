"""pgvector's `vector` in binary on asyncpg connections, and a SQL type that uses it.

Sending a query as text means formatting every float in Python and parsing it again in
the server, on every search and every insert; binary is one `struct.pack`
(BENCHMARKS.md, vector search and ingest).

The codec still accepts text (what pgvector's SQLAlchemy type binds) and decodes to text
(what it parses), so ORM code that uses `pgvector.sqlalchemy.Vector` keeps working on a
connection that has it.
"""

from __future__ import annotations

import logging
import struct
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import UserDefinedType

logger = logging.getLogger(__name__)

# The asyncpg connections `register_vector_codec` succeeded on: the one record of it.
_WITH_CODEC: weakref.WeakSet[Any] = weakref.WeakSet()


def has_binary_codec(conn: Any) -> bool:
    """Whether `register_vector_codec` succeeded on this asyncpg connection."""
    return conn in _WITH_CODEC


async def pooled_has_binary_codec(conn: AsyncConnection) -> bool:
    """`has_binary_codec` for a pooled SQLAlchemy connection (no round trip)."""
    raw = await conn.get_raw_connection()
    return has_binary_codec(raw.driver_connection)


def vector_text(values: Sequence[float]) -> str:
    """pgvector's text form, `[1.0,2.5]`: the one writer of it."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def parse_vector_text(text: str) -> list[float]:
    """The floats of pgvector's text form: the one reader of it."""
    body = text.strip()[1:-1]
    return [float(x) for x in body.split(",")] if body else []


def encode_vector(value: Any) -> bytes:
    """Binary wire format: dim (uint16), unused (uint16), dim float4, big-endian."""
    if isinstance(value, str):
        floats: Sequence[float] = parse_vector_text(value)
    elif hasattr(value, "tolist"):  # numpy arrays, array.array
        floats = value.tolist()
    else:
        floats = value
    n = len(floats)
    return struct.pack(f">HH{n}f", n, 0, *floats)


def decode_vector(data: bytes) -> str:
    """Back to pgvector's text form, which `pgvector.sqlalchemy.Vector` parses."""
    n, _ = struct.unpack_from(">HH", data)
    return vector_text(struct.unpack_from(f">{n}f", data, 4))


async def register_vector_codec(conn: Any) -> bool:
    """Register the binary codec on an asyncpg connection; False if pgvector is not there.

    A database that has not been migrated yet has no `vector` type: that connection keeps
    the text path (searches check `has_binary_codec` and bind text there).
    """
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE t.typname = 'vector' LIMIT 1"
    )
    if schema is None:
        return False
    await conn.set_type_codec(
        "vector", schema=schema, encoder=encode_vector, decoder=decode_vector, format="binary"
    )
    _WITH_CODEC.add(conn)
    return True


class BinaryVector(UserDefinedType[Any]):
    """A `vector` bind parameter handed to the driver as-is (a list of floats).

    Only for connections with the codec above; the store picks pgvector's text type
    otherwise. The dimension is checked in Python before any SQL runs.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"

    def bind_processor(self, dialect: Dialect) -> None:
        return None
