"""Keyset paging, the one way every list pages: runs, threads, messages and run children.

Offsets skip or repeat rows when rows arrive between pages; a keyset cursor names the
last row seen, so the next page starts exactly after it whatever was inserted since.

Cursors are signed (HMAC-SHA256 over the list they belong to and their values): a
cursor we did not issue, or one from another list, is refused as bad input before any
of its values reach SQL. The key is `CURSOR_SECRET` when set (so several processes
accept each other's cursors; `chad-memory serve --workers N` shares one), else random
per process, which only means cursors do not outlive a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Integer, Select, bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

from chad_memory.errors import InvalidInputError
from chad_memory.schemas import Page
from chad_memory.stores.limits import check_page

R = TypeVar("R", bound=BaseModel)
# Held here: pydantic keeps parametrized generics only weakly, and would otherwise rebuild
# Page[Any] (its validators and serializers) for every page.
_Page = Page[Any]

_PROCESS_SECRET = secrets.token_bytes(32)
_BAD_CURSOR = "cursor is malformed or not one this list issued; pass back a next_cursor unchanged"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


class CursorCodec:
    """Signs and checks cursors with one key."""

    def __init__(self, secret: str | bytes | None = None) -> None:
        if secret is None:
            self._key = _PROCESS_SECRET
        else:
            raw = secret.encode() if isinstance(secret, str) else secret
            self._key = hashlib.sha256(raw).digest()

    def _mac(self, scope: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{scope}\x00{payload}".encode(), hashlib.sha256)
        return _b64(digest.digest()[:16])

    def encode(self, scope: str, values: Sequence[Any]) -> str:
        payload = _b64(
            json.dumps(
                [v.isoformat() if isinstance(v, datetime) else _plain(v) for v in values],
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{self._mac(scope, payload)}"

    def decode(self, scope: str, cursor: str, kinds: Sequence[type]) -> list[Any]:
        """The cursor's values as `kinds`; InvalidInputError for anything else."""
        payload, _, mac = cursor.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise InvalidInputError(_BAD_CURSOR)
        try:
            raw = json.loads(_unb64(payload))
            if not isinstance(raw, list) or len(raw) != len(kinds):
                raise ValueError("wrong shape")
            return [_typed(value, kind) for value, kind in zip(raw, kinds, strict=True)]
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInputError(_BAD_CURSOR) from exc


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _typed(value: Any, kind: type) -> Any:
    if kind is datetime:
        if not isinstance(value, str):
            raise TypeError("timestamp")
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("cursor timestamp has no time zone")
        return at
    if kind is uuid.UUID:
        if not isinstance(value, str):
            raise TypeError("uuid")
        return uuid.UUID(value)
    if kind is int:
        if type(value) is not int or not -(2**63) <= value < 2**63:
            raise TypeError("int")
        return value
    raise TypeError(f"no cursor type {kind!r}")


@dataclass(frozen=True)
class Keyset:
    """How one list is ordered: its cursor scope, its key columns, and the direction.

    The key columns must be unique together (the last is always an id) so "after this
    row" is exact.
    """

    scope: str
    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool

    @property
    def kinds(self) -> tuple[type, ...]:
        return tuple(column.type.python_type for column in self.columns)

    def order(self, stmt: Select[Any]) -> Select[Any]:
        return stmt.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns))

    def after(self) -> ColumnElement[bool]:
        """Rows after the cursor's row; its values are the `after_<i>` parameters."""
        key = tuple_(*self.columns)
        marks = tuple_(*(bindparam(f"after_{i}", type_=c.type) for i, c in enumerate(self.columns)))
        return key < marks if self.descending else key > marks

    def cursor_of(self, codec: CursorCodec, item: Any) -> str:
        return codec.encode(self.scope, [getattr(item, c.key) for c in self.columns])


def keyset_shape(stmt: Select[Any], keyset: Keyset, *, after: bool, offset: bool) -> Select[Any]:
    """`stmt` ordered and limited, with named parameters for the page (`keyset_values`):
    one statement per shape, whatever the values, so it can be compiled once."""
    if after:
        stmt = stmt.where(keyset.after())
    stmt = keyset.order(stmt)
    if offset:
        stmt = stmt.offset(bindparam("page_offset", type_=Integer))
    return stmt.limit(bindparam("page_limit", type_=Integer))


def keyset_values(
    keyset: Keyset, codec: CursorCodec, *, limit: int, cursor: str | None, offset: int
) -> dict[str, Any]:
    """The page's parameters: one row more than asked (it says whether there is a next
    page), the offset, and the cursor's values, checked (a forged cursor is refused)."""
    check_page(limit, offset)
    values: dict[str, Any] = {"page_limit": limit + 1}
    if offset:
        values["page_offset"] = offset
    if cursor is not None:
        decoded = codec.decode(keyset.scope, cursor, keyset.kinds)
        values.update({f"after_{i}": v for i, v in enumerate(decoded)})
    return values


def keyset_select(
    stmt: Select[Any],
    keyset: Keyset,
    codec: CursorCodec,
    *,
    limit: int,
    cursor: str | None = None,
    offset: int = 0,
) -> Select[Any]:
    """`stmt` narrowed to the page after `cursor`, ordered, limit + 1 rows."""
    values = keyset_values(keyset, codec, limit=limit, cursor=cursor, offset=offset)
    shape = keyset_shape(stmt, keyset, after=cursor is not None, offset=offset > 0)
    return shape.params(values)


def page_of(
    items: list[R], keyset: Keyset, codec: CursorCodec, limit: int, total: int | None = None
) -> Page[R]:
    """The page envelope for rows read by `keyset_select` (limit + 1 of them at most)."""
    more = len(items) > limit
    items = items[:limit]
    next_cursor = keyset.cursor_of(codec, items[-1]) if more and items else None
    return _Page(items=items, next_cursor=next_cursor, total=total)


def record_select(model: type[DeclarativeBase], record: type[BaseModel]) -> Select[Any]:
    """SELECT of exactly the columns `record` holds: plain rows, no ORM identity map.

    ORM objects (and their instance state) for every row of a page would only be copied
    into records.
    """
    table = model.__table__
    columns = [table.c[name] for name in record.model_fields]
    return select(*columns)


async def keyset_page(
    session: AsyncSession | AsyncConnection,
    stmt: Select[Any],
    keyset: Keyset,
    record: type[R],
    codec: CursorCodec,
    *,
    limit: int,
    cursor: str | None = None,
    offset: int = 0,
    total_stmt: Select[Any] | None = None,
) -> Page[R]:
    """One page of `stmt`'s rows (see `record_select`) as `record`s, and the total when
    `total_stmt` is given."""
    rows = await session.execute(
        keyset_select(stmt, keyset, codec, limit=limit, cursor=cursor, offset=offset)
    )
    items = [record.model_validate(dict(row._mapping)) for row in rows]
    total = None if total_stmt is None else int(await session.scalar(total_stmt) or 0)
    return page_of(items, keyset, codec, limit, total)
