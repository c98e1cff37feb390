"""Where each kind of search hit lives, and the one statement that searches them.

A kind is a table (whose text index, `chad_memory.text_search.DOCUMENTS`, the query
repeats exactly, or the planner cannot use the index), where its owner is written (its
own `actor`, its run's, its thread's), and which filters apply to it (`SearchFilter`).

The statement: one branch per kind, each `ORDER BY created_at DESC, id DESC LIMIT n`
after the cursor, under UNION ALL; the newest n of all branches make the page; then the
page's rows are joined back by primary key for their snippets (`ts_headline` parses the
document again, so only the page's rows pay for it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    FromClause,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.selectable import NamedFromClause

from chad_memory.errors import InvalidInputError
from chad_memory.models import Embedding, LLMCall, Message, Run, Step, Thread
from chad_memory.schemas import SearchFilter
from chad_memory.stores.paging import Keyset, keyset_shape
from chad_memory.text_search import CONFIG, DOCUMENTS, document_vector

# Snippet fragments; the two private-use characters mark the matched words and are
# turned into offsets (`highlights`) before a hit leaves the library.
MARK_START, MARK_END = "\ue000", "\ue001"
HEADLINE_OPTIONS = (
    f"MaxFragments=2, MaxWords=18, MinWords=6, ShortWord=2, "
    f'FragmentDelimiter=" … ", StartSel={MARK_START}, StopSel={MARK_END}'
)

Owner = Literal["own", "run", "thread"]


@dataclass(frozen=True)
class Kind:
    name: str
    table: Table
    title: str
    owner: Owner
    run_column: str | None = None  # the column naming the hit's run
    thread_column: str | None = None  # the column naming the hit's thread
    status: bool = False
    metadata: bool = False
    namespace: bool = False
    # A child of a run: its run's thread and tags are its own for filtering.
    in_run: bool = False

    def document_sql(self, t: NamedFromClause) -> ColumnElement[str]:
        """The indexed document's text, over `t` (this kind's table or an alias of it)."""
        return literal_column(DOCUMENTS[self.table.name].format(t=f"{t.name}."), type_=Text)

    def vector(self, t: NamedFromClause) -> ColumnElement[Any]:
        return literal_column(document_vector(self.table.name, f"{t.name}."))

    def applies(self, f: SearchFilter) -> bool:
        """Whether every filter that is set applies to this kind's rows."""
        run_level = self.in_run or self.name == "run"
        return not (
            (f.status is not None and not self.status)
            or (f.tag is not None and not run_level)
            or (f.metadata is not None and not self.metadata)
            or (f.run_id is not None and self.run_column is None)
            or (f.thread_id is not None and not (self.thread_column or self.in_run))
            or (f.namespace is not None and not self.namespace)
        )


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "run",
            _table(Run),
            title="name",
            owner="own",
            run_column="id",
            thread_column="thread_id",
            status=True,
            metadata=True,
        ),
        Kind(
            "step",
            _table(Step),
            title="name",
            owner="run",
            run_column="run_id",
            status=True,
            metadata=True,
            in_run=True,
        ),
        Kind(
            "llm_call",
            _table(LLMCall),
            title="model",
            owner="own",
            run_column="run_id",
            status=True,
            in_run=True,
        ),
        Kind("thread", _table(Thread), "title", "own", thread_column="id", metadata=True),
        Kind(
            "message",
            _table(Message),
            title="role",
            owner="thread",
            thread_column="thread_id",
            metadata=True,
        ),
        Kind(
            "memory",
            _table(Embedding),
            title="namespace",
            owner="own",
            run_column="run_id",
            metadata=True,
            namespace=True,
        ),
    )
}
RUNS = _table(Run).alias("hit_run")
THREADS = _table(Thread).alias("hit_thread")


def kinds_for(f: SearchFilter) -> list[Kind]:
    """The kinds a search with these filters covers; InvalidInputError when the kinds
    asked for take none of the filters given."""
    asked = [KINDS[name] for name in (f.kinds or KINDS)]
    chosen = [k for k in asked if k.applies(f)]
    if not chosen:
        names = ", ".join(k.name for k in asked)
        raise InvalidInputError(f"the filters given apply to none of the kinds searched ({names})")
    return chosen


def _branch(
    kind: Kind, f: SearchFilter, actor: str, tsquery: ColumnElement[Any], after: bool
) -> Select[Any]:
    t = kind.table
    source: FromClause = t
    owner: ColumnElement[Any] = t.c.actor if kind.owner == "own" else RUNS.c.actor
    run_of: ColumnElement[Any] = t.c[kind.run_column] if kind.run_column else null()
    thread_of: ColumnElement[Any] = t.c[kind.thread_column] if kind.thread_column else null()
    if kind.owner == "run" or (kind.in_run and (f.tag is not None or f.thread_id is not None)):
        source = source.join(RUNS, RUNS.c.id == t.c.run_id)
        thread_of = RUNS.c.thread_id
    if kind.owner == "thread":
        source = source.join(THREADS, THREADS.c.id == t.c.thread_id)
        owner = THREADS.c.actor
    conds: list[ColumnElement[bool]] = [
        owner == bindparam("actor", actor),
        kind.vector(t).op("@@", return_type=Boolean)(tsquery),
    ]
    if f.created_after is not None:
        conds.append(t.c.created_at >= bindparam("created_after", f.created_after))
    if f.created_before is not None:
        conds.append(t.c.created_at < bindparam("created_before", f.created_before))
    if f.status is not None:
        conds.append(t.c.status == bindparam("status", f.status))
    if f.tag is not None:
        tags = t.c.tags if kind.name == "run" else RUNS.c.tags
        conds.append(tags.contains(bindparam("tag", [f.tag], type_=RUNS.c.tags.type)))
    if f.metadata is not None:
        wanted = cast(bindparam("metadata", json.dumps(f.metadata), type_=Text), JSONB)
        conds.append(t.c.metadata.contains(wanted))
    if f.run_id is not None:
        conds.append(run_of == bindparam("run_id", f.run_id))
    if f.thread_id is not None:
        conds.append(thread_of == bindparam("thread_id", f.thread_id))
    if f.namespace is not None:
        conds.append(t.c.namespace == bindparam("namespace", f.namespace))
    stmt = (
        select(
            literal(kind.name, Text).label("kind"),
            t.c.id,
            t.c.created_at,
            run_of.label("run_id"),
            thread_of.label("thread_id"),
            cast(t.c[kind.title], Text).label("title"),
        )
        .select_from(source)
        .where(*conds)
    )
    return keyset_shape(stmt, keyset_of(t), after=after, offset=False)


def keyset_of(t: Table) -> Keyset:
    """Newest first; every kind's cursor has the same shape (created_at, id)."""
    return Keyset("search", (t.c.created_at, t.c.id), descending=True)  # type: ignore[arg-type]


SEARCH = keyset_of(_table(Step))


def search_statement(f: SearchFilter, actor: str, *, after: bool) -> Select[Any]:
    """The page of hits (limit + 1) with their snippets; parameters `tsq` (the
    `to_tsquery` text), `page_limit` and, after a cursor, `after_0` / `after_1`."""
    config: ColumnElement[Any] = literal_column(f"'{CONFIG}'::regconfig")
    tsquery = func.to_tsquery(config, bindparam("tsq", type_=Text))
    kinds = kinds_for(f)
    hits = union_all(*(_branch(k, f, actor, tsquery, after) for k in kinds)).subquery("hits")
    page = (
        select(hits)
        .order_by(hits.c.created_at.desc(), hits.c.id.desc())
        .limit(bindparam("page_limit"))
        .cte("page")
    )
    joined: FromClause = page
    documents = []
    for kind in kinds:
        alias = kind.table.alias(f"doc_{kind.name}")
        joined = joined.outerjoin(alias, and_(page.c.kind == kind.name, alias.c.id == page.c.id))
        documents.append((page.c.kind == kind.name, kind.document_sql(alias)))
    snippet = func.ts_headline(
        config,
        case(*documents, else_=literal("", Text)),
        tsquery,
        bindparam("headline_options", HEADLINE_OPTIONS),
        type_=Text,
    )
    return (
        select(page, snippet.label("snippet"))
        .select_from(joined)
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )
