"""Core statements compiled once for the driver: one definition, no second SQL dialect.

The hottest statements are written once with SQLAlchemy Core (named `bindparam`s) and
compiled here, once, to the `$n` SQL asyncpg takes. Executing them skips SQLAlchemy's
per-call work (cache-key generation, result processing) while the statement itself stays
the Core one. jsonb parameters travel as JSON text on these connections (SQLAlchemy's
codec encodes text and decodes results to Python values).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.dml import Insert

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DriverStatement:
    sql: str
    params: tuple[str, ...]
    json_params: frozenset[str]
    json_columns: frozenset[str]

    @classmethod
    def of(
        cls,
        stmt: Select[Any] | Insert,
        json_params: Sequence[str] = (),
        columns: Sequence[ColumnElement[Any]] = (),
    ) -> DriverStatement:
        """`columns`: what an INSERT returns (a SELECT says so itself)."""
        compiled = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        if isinstance(stmt, Select):
            columns = list(stmt.selected_columns)
        json_columns = frozenset(
            str(c.key) for c in columns if isinstance(c.type, JSONB) and c.key is not None
        )
        params = tuple(compiled.positiontup or ())
        return cls(str(compiled), params, frozenset(json_params), json_columns)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [
            json.dumps(values[name]) if name in self.json_params else values[name]
            for name in self.params
        ]

    def row(self, record: Mapping[str, Any]) -> dict[str, Any]:
        # SQLAlchemy's jsonb codec on these connections already decodes results: decoding
        # again would turn a stored JSON string ("tokens") into a parse error.
        return dict(record)
