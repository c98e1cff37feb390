"""What a search query means: the syntax people know, turned into one `tsquery` text.

Syntax (web search engines' rules, as PostgreSQL's `websearch_to_tsquery` has them, plus
prefixes): words must all appear; `"quoted phrases"` appear in that order; `-word` or
`-"a phrase"` must not appear; `OR` between two terms accepts either; `word*` matches
every word starting so (`order-44*`, `get_wea*`). Case does not matter; English words
are matched by their stem (`refunds` finds `refunded`).

The text goes to PostgreSQL as one `to_tsquery('english', ...)` operand list: every
operand is quoted, so nothing the user types is read as operator syntax, and PostgreSQL
itself stems and splits each operand with the same parser that indexed the documents.
That parser splits identifiers (`get_weather` into `get`, `weather`; `order-4411` into
`order`, `-4411`) and quoting an operand turns its parts into a phrase, so an
identifier is found whole, in order. Two things are added here:

- a number on its own (`4411`) also matches the parser's signed form (`-4411`), which is
  how it indexed the number inside `order-4411`;
- Chinese, Japanese and Korean text has no spaces, so documents also index every
  overlapping pair of CJK characters (`chad_search_vector`, revision 011); a CJK term
  becomes the phrase of its pairs, which matches exactly the documents holding that
  substring. A single CJK character is too short to be found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chad_memory.errors import InvalidInputError

# The text search configuration documents and queries share (revision 011).
CONFIG = "english"
# Unicode ranges treated as CJK: kana, CJK ideographs (and extension A, compatibility),
# Hangul syllables. The same ranges as chad_cjk_bigrams / chad_search_vector.
CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# The document each searched table's text index holds, over `{t}`-prefixed columns
# ("" in the index, "alias." in a query). Revision 011 builds `chad_search_vector(doc)`
# GIN indexes on exactly these; a query must repeat the expression for the index to serve.
DOCUMENTS: dict[str, str] = {
    "runs": "chad_run_document({t}name, {t}request_payload, {t}result, {t}error)",
    "steps": "chad_step_document({t}name, {t}input, {t}output, {t}error)",
    "llm_calls": "chad_llm_call_document({t}request, {t}response, {t}error)",
    "threads": "{t}title",
    "messages": "coalesce({t}content, '')",
    "embeddings": "coalesce({t}content, '')",
}
MAX_QUERY_CHARS = 500
MAX_TERMS = 16

_CJK_RUN = re.compile(f"[{CJK_RANGES}]{{2,}}")
_CJK_CHAR = re.compile(f"[{CJK_RANGES}]")
# A quoted phrase (closing quote optional), or a bare term up to the next space/quote.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+?)(?=\s|"|$)')
_NUMBER = re.compile(r"\d+")
_NO_TEXT = "q has no words to search for"


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False
    prefix: bool = False
    excluded: bool = False


def document_vector(table: str, prefix: str = "") -> str:
    """SQL for the indexed tsvector of `table`'s rows, columns prefixed with `prefix`."""
    return f"chad_search_vector({DOCUMENTS[table].format(t=prefix)})"


def parse_terms(q: str) -> list[list[Term]]:
    """`q` as groups of terms: every group must match, one term of a group is enough."""
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"q is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in q:
        raise InvalidInputError("q must not contain NUL characters")
    groups: list[list[Term]] = []
    joined = False  # the previous token was OR
    count = 0
    for match in _TOKEN.finditer(q):
        minus, phrase, bare = match.groups()
        if bare is not None and bare == "OR":
            joined = bool(groups)
            continue
        if phrase is not None:
            term = Term(phrase.strip(), phrase=True, excluded=bool(minus))
        else:
            excluded = bare.startswith("-") and len(bare) > 1
            word = bare[1:] if excluded else bare
            prefix = word.endswith("*")
            term = Term(word.rstrip("*"), prefix=prefix, excluded=excluded)
        if not _has_word(term.text):
            continue
        count += 1
        if count > MAX_TERMS:
            raise InvalidInputError(f"q has more than {MAX_TERMS} terms")
        if joined and groups:
            groups[-1].append(term)
        else:
            groups.append([term])
        joined = False
    if not groups or all(t.excluded for group in groups for t in group):
        raise InvalidInputError(_NO_TEXT)
    return groups


def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _quote(text: str) -> str:
    """A to_tsquery operand: quoted, so its characters are text, never operators."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def cjk_bigrams(text: str) -> list[str]:
    """Every overlapping pair of CJK characters, run by run (as chad_cjk_bigrams)."""
    pairs: list[str] = []
    for run in _CJK_RUN.findall(text):
        pairs.extend(run[i : i + 2] for i in range(len(run) - 1))
    return pairs


def _operand(term: Term) -> str:
    if _CJK_CHAR.search(term.text):
        pairs = cjk_bigrams(term.text)
        if not pairs:
            raise InvalidInputError("a Chinese, Japanese or Korean term needs two characters")
        rest = _CJK_RUN.sub(" ", term.text).strip()
        parts = [" <-> ".join(_quote(p) for p in pairs)]
        if _has_word(rest):
            parts.append(_quote(rest))
        return "(" + " & ".join(parts) + ")"
    suffix = ":*" if term.prefix else ""
    operand = _quote(term.text) + suffix
    if _NUMBER.fullmatch(term.text):
        operand = f"({operand} | {_quote('-' + term.text)}{suffix})"
    return operand


def tsquery_text(q: str) -> str:
    """The `to_tsquery('english', ...)` text for a search query; InvalidInputError when
    it is too long, holds too many terms or nothing to search for."""
    clauses = []
    for group in parse_terms(q):
        options = [("!" if t.excluded else "") + _operand(t) for t in group]
        clauses.append(options[0] if len(options) == 1 else "(" + " | ".join(options) + ")")
    return " & ".join(clauses)


def query_cjk_terms(q: str) -> list[str]:
    """The CJK runs of a query, longest first: what the snippet marks by hand, since
    ts_headline sees a CJK run as one word."""
    return sorted(set(_CJK_RUN.findall(q)), key=len, reverse=True)
