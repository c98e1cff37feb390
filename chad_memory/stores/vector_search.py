"""The SQL of vector search, built with SQLAlchemy Core and compiled once per shape.

Separate from the store (chad_memory.stores.vectors) because it is the one definition of
each statement a search runs: the prepare statement (the index in use, the table's size,
how many rows a filter matches, the transaction's settings), the settings statement and
the search itself, for connections with the binary vector codec and without it; and the
plan (exact scan or index, and the index's setting) those statements carry out.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Float,
    FromClause,
    Integer,
    MetaData,
    Table,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)

from chad_memory.models import Embedding
from chad_memory.stores.statements import DriverStatement
from chad_memory.vector_codec import BinaryVector
from chad_memory.vector_index import (
    INDEX_STATE_SQL,
    ROWS_ESTIMATE_SQL,
    VectorIndexInfo,
    ef_search_for,
    probes_for_lists,
)

# A stale IVFFLAT index on a table this small is bypassed for an exact scan.
STALE_EXACT_MAX_ROWS = 20_000
# The filters a search may take, in the order statements name them.
FILTERS = ("actor", "namespace", "source_id", "metadata")


def core_table(vector: Any) -> Table:
    """`embeddings` for Core statements, with the vector bound as `vector` (binary or text)."""
    return Table(
        "embeddings",
        MetaData(),
        *(
            Column(
                c.name,
                vector if c.name == "embedding" else c.type,
                key=c.key,
                # The key lets RETURNING ... sort_by_parameter_order batch the rows.
                primary_key=c.primary_key,
            )
            for c in Embedding.__table__.c
        ),
    )


# True: connections with chad_memory.vector_codec's binary codec; False: pgvector's text.
TABLES = {True: core_table(BinaryVector()), False: core_table(Vector())}


@lru_cache(maxsize=512)
def search_statement(
    binary: bool, filters: tuple[str, ...], exact: bool, floor: bool, k: int, as_of: bool = False
) -> DriverStatement:
    """Built and compiled once per shape: building a subquery costs more than running it
    on small k, and the driver path skips SQLAlchemy's per-call work.

    Only memories valid at the time searched are candidates: current ones (valid_to IS
    NULL), or with `as_of` those valid at the bound `as_of` timestamp.
    """
    t = TABLES[binary]
    query = bindparam("query", type_=t.c.embedding.type)
    distance: ColumnElement[float] = (
        func.cosine_distance(t.c.embedding, query, type_=Float)
        if exact  # a function the vector index cannot serve: an exact scan
        else t.c.embedding.op("<=>", return_type=Float)(query)
    )
    inner = (
        select(
            *(c for c in t.c if c.name not in ("embedding", "content_hash")),
            (literal_column("1") - distance).label("score"),
        )
        .where(*conditions(t, filters), valid_at(t, as_of))
        .order_by(distance)
        # A literal LIMIT (k is an int checked by the caller): with "LIMIT $n" the planner
        # guesses the row count and may pick another plan than for k=10.
        .limit(literal_column(str(int(k))))
        .subquery()
    )
    # relaxed_order may return near-ties out of order; the outer sort restores it.
    stmt = select(inner).order_by(inner.c.score.desc())
    if floor:
        stmt = stmt.where(inner.c.score >= bindparam("min_score", type_=Float))
    return DriverStatement.of(stmt, json_params(filters))


@lru_cache(maxsize=64)
def prepare_statement(filters: tuple[str, ...], settings: int) -> DriverStatement:
    """The index settings for this transaction, the index in use and the table's size, and,
    when filtered, how many rows match (capped)."""
    t = TABLES[False]
    columns: list[ColumnElement[Any]] = [
        literal_column(INDEX_STATE_SQL),
        literal_column(ROWS_ESTIMATE_SQL),
        *(
            func.set_config(bindparam(f"name{i}"), bindparam(f"value{i}"), literal_column("true"))
            for i in range(settings)
        ),
    ]
    if filters:
        matching = (
            select(literal_column("1"))
            .select_from(t)
            .where(*conditions(t, filters))
            .limit(bindparam("cap", type_=Integer))
        ).subquery()
        columns.insert(2, select(func.count()).select_from(matching).scalar_subquery())
    return DriverStatement.of(select(*columns), json_params(filters))


@lru_cache(maxsize=8)
def settings_statement(settings: int) -> DriverStatement:
    return DriverStatement.of(
        select(
            *(
                func.set_config(
                    bindparam(f"name{i}"), bindparam(f"value{i}"), literal_column("true")
                )
                for i in range(settings)
            )
        )
    )


def json_params(filters: tuple[str, ...]) -> tuple[str, ...]:
    return ("f_metadata",) if "metadata" in filters else ()


def setting_params(gucs: dict[str, str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, (name, value) in enumerate(gucs.items()):
        params[f"name{i}"], params[f"value{i}"] = name, value
    return params


def conditions(t: Table, filters: tuple[str, ...]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for name in filters:
        if name == "metadata":
            conds.append(t.c.metadata.contains(bindparam("f_metadata", type_=t.c.metadata.type)))
        else:
            conds.append(t.c[name] == bindparam(f"f_{name}"))
    return conds


def valid_at(t: Table, as_of: bool) -> ColumnElement[bool]:
    """Rows valid now (current), or at the `as_of` bind parameter."""
    if not as_of:
        return t.c.valid_to.is_(None)
    return valid_at_condition(t, bindparam("as_of", type_=DateTime(timezone=True)))


def valid_at_condition(t: FromClause, when: Any) -> ColumnElement[bool]:
    """Valid at `when`: from valid_from (inclusive) until valid_to (exclusive)."""
    return and_(t.c.valid_from <= when, or_(t.c.valid_to.is_(None), t.c.valid_to > when))


def identity(state: Any) -> tuple[int, str | None, bool]:
    """(oid, note, valid) of INDEX_STATE_SQL's value, comparable with VectorIndexInfo.identity."""
    oid, _, _, _, valid, note = json.loads(state) if isinstance(state, str) else state
    return int(oid), note, bool(valid)


def plan_search(
    info: VectorIndexInfo, k: int, *, probes: int | None, ef_search: int | None
) -> tuple[bool, dict[str, str]]:
    """(exact?, index settings) for a k-hit search on this index; exact when no usable
    index helps. `probes` / `ef_search` override the calibrated setting when given."""
    # Plan each search for its own filter values: a generic plan of the prepared
    # statement cannot tell an actor owning 1% of rows from one owning all of them.
    custom = {"plan_cache_mode": "force_custom_plan"}
    if info.method is None or not info.valid or not info.trained:
        return True, custom
    calibration = info.calibration
    if info.method == "hnsw":
        ef = ef_search
        if ef is None and calibration is not None:
            # Calibrated for calibration.k hits; a larger k needs at least 2k.
            ef = calibration.value if k <= calibration.k else max(calibration.value, 2 * k)
        return False, {
            "hnsw.ef_search": str(min(1000, ef or ef_search_for(k))),
            "hnsw.iterative_scan": "relaxed_order",
            **custom,
        }
    lists = info.lists or 1
    if probes is None and calibration is not None:
        scale = 1.0 if k <= calibration.k else math.sqrt(k / calibration.k)
        probes = math.ceil(calibration.value * scale)
    probes = probes or probes_for_lists(lists)
    if info.stale:
        # Lists learnt from far fewer rows: on a small table an exact scan is cheap and
        # right; on a large one widen the probes until the rebuild is done.
        if info.rows <= STALE_EXACT_MAX_ROWS:
            return True, custom
        probes = max(probes, math.ceil(lists / 4))
    return False, {
        "ivfflat.probes": str(min(lists, probes)),
        "ivfflat.iterative_scan": "relaxed_order",
        **custom,
    }
