"""What ChadMemoryStore checks in what callers send (namespaces, limits, TTLs, filters)
and the SQL conditions a search's namespace prefix and filter become.

Separate from the store class: these are the rules on input and the filter semantics
(where we differ from LangGraph's own Postgres store on purpose), testable by reading
one module.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from langgraph.store.base import InvalidNamespaceError, SearchOp

from chad_memory.errors import InvalidInputError
from chad_memory.integrations.langgraph.driver import _Params
from chad_memory.integrations.langgraph.statements import LIVE
from chad_memory.validation import check_json, check_text

MAX_LIMIT = 10_000
ORDERING = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _namespace(namespace: Any, where: str = "namespace") -> str:
    """LangGraph's namespace rules (its own error class), plus chad-memory's text rules."""
    if not isinstance(namespace, tuple | list) or not namespace:
        raise InvalidNamespaceError(f"{where} must be a non-empty tuple of strings")
    for label in namespace:
        if not isinstance(label, str):
            raise InvalidNamespaceError(
                f"{where} label {label!r} in {tuple(namespace)} must be a string"
            )
        if not label:
            raise InvalidNamespaceError(f"{where} labels cannot be empty: {tuple(namespace)}")
        if "." in label:
            raise InvalidNamespaceError(
                f"{where} label {label!r} in {tuple(namespace)} cannot contain periods ('.')"
            )
        check_text(label, f"{where} label")
    if namespace[0] == "langgraph":
        raise InvalidNamespaceError(f'root label of a namespace cannot be "langgraph": {namespace}')
    return ".".join(namespace)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _namespace_pattern(path: Sequence[str], match_type: str) -> str:
    """A POSIX regex over the dot-joined namespace; `*` matches exactly one label."""
    labels = []
    for label in path:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidInputError(f"namespace {match_type} has an invalid label {label!r}")
        labels.append("[^.]+" if label == "*" else re.escape(label))
    body = r"\.".join(labels)
    return rf"(^|\.){body}$" if match_type == "suffix" else rf"^{body}(\.|$)"


def _bounded(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_LIMIT:
        raise InvalidInputError(f"{name} must be an integer between {low} and {MAX_LIMIT}")
    return value


def _ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError("ttl must be a number of minutes")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError("ttl must be a positive, finite number of minutes")
    return float(value)


def _item_conditions(op: SearchOp, params: _Params, omit_expired: bool) -> list[str]:
    """WHERE conditions on store_items `i` for a search (the actor is always $1); expired
    items not yet swept match unless `omit_expired` (LangGraph's TTLConfig setting)."""
    conds = ["i.actor = $1", LIVE] if omit_expired else ["i.actor = $1"]
    if op.namespace_prefix:
        prefix = _namespace(op.namespace_prefix, "namespace_prefix")
        conds.append(
            f"(i.prefix = {params.add(prefix)} "
            f"OR i.prefix LIKE {params.add(_escape_like(prefix) + '.%')} ESCAPE '\\')"
        )
    if op.filter is None:
        return conds
    if not isinstance(op.filter, dict):
        raise InvalidInputError("filter must be an object of key: value or key: {$op: value}")
    for key, wanted in op.filter.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"filter key {key!r} must be a non-empty string")
        check_text(key, "filter key")
        operators = (
            wanted
            if isinstance(wanted, dict) and wanted and all(str(k).startswith("$") for k in wanted)
            else {"$eq": wanted}
        )
        for name, value in operators.items():
            conds.append(_condition(key, name, value, params))
    return conds


def _condition(key: str, name: str, value: Any, params: _Params) -> str:
    field = f"i.value -> {params.add(key)}"
    check_json(value, f"filter value for {key!r}")
    if name == "$eq":
        # Containment lets the GIN index on value narrow; equality keeps it exact.
        whole = params.add(json.dumps({key: value}))
        one = params.add(json.dumps(value))
        return f"(i.value @> CAST({whole} AS jsonb) AND {field} = CAST({one} AS jsonb))"
    if name == "$ne":
        return f"({field}) IS DISTINCT FROM CAST({params.add(json.dumps(value))} AS jsonb)"
    if name in ORDERING:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInputError(f"{name} on {key!r} takes a number or a string")
        kind = "string" if isinstance(value, str) else "number"
        # jsonb orders numbers numerically and strings as text; the type check keeps a
        # string from comparing with a number by jsonb's type order.
        return (
            f"(jsonb_typeof({field}) = '{kind}' "
            f"AND {field} {ORDERING[name]} CAST({params.add(json.dumps(value))} AS jsonb))"
        )
    raise InvalidInputError(
        f"unsupported filter operator {name!r}; use $eq, $ne, $gt, $gte, $lt or $lte"
    )
