"""Full-text search: three SQL functions and a GIN expression index per searchable table.

What each kind indexes: runs their name, request payload, result and error; steps their
name, input, output and error; LLM calls their request, response and error; threads
their title; messages their content; embeddings their content. JSON payloads contribute
their string and number values (keys are structure, not text), the first 32,768
characters per payload; each document is cut at 65,536 characters.

`chad_search_vector(text)` is the one definition of a document's lexemes: the `english`
configuration (stemmed words; other Latin-script languages are found by the same
stemmed forms, since query and document go through the same rules), plus, for text with
Chinese, Japanese or Korean characters, every overlapping two-character pair of each CJK
run, so any substring of two or more characters is found.

Expression indexes rather than stored columns: no table is rewritten (the build holds
a SHARE lock: reads go on, writes wait for it), the tables keep their columns, and the index is
maintained by the same INSERT or UPDATE that writes the row, so a row is searchable as
soon as its write commits. Queries repeat the indexed expression exactly
(`chad_memory.stores.search_kinds`).

The downgrade drops the indexes and the functions; no row is touched either way.

Revision ID: 015_full_text_search
Revises: 014_scores_datasets
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "015_full_text_search"
down_revision: str | None = "014_scores_datasets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not imported): the library's definitions may move on in later revisions.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"

FUNCTIONS = (
    """
    CREATE OR REPLACE FUNCTION chad_search_json(doc jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT coalesce(left(string_agg(v #>> '{}', E'\\n'), 32768), '')
      FROM jsonb_path_query(
        doc, 'strict $.** ? (@.type() == "string" || @.type() == "number")'
      ) AS v
    $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION chad_cjk_bigrams(body text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT string_agg(substr(r.run[1], i, 2), ' ' ORDER BY r.n, i)
      FROM regexp_matches(body, '[{_CJK}]{{2,}}', 'g') WITH ORDINALITY AS r(run, n),
           generate_series(1, char_length(r.run[1]) - 1) AS i
    $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION chad_search_vector(body text) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
      doc text := left(body, 65536);
      found tsvector;
    BEGIN
      IF doc IS NULL OR doc = '' THEN
        RETURN ''::tsvector;
      END IF;
      found := to_tsvector('english'::regconfig, doc);
      -- Only text with multi-byte characters can hold CJK: ASCII skips the regex.
      IF octet_length(doc) <> char_length(doc) AND doc ~ '[{_CJK}]' THEN
        found := found || to_tsvector('english'::regconfig, __schema__.chad_cjk_bigrams(doc));
      END IF;
      RETURN found;
    END
    $$
    """,
)

# The documents of the tables with several searched columns, as functions: an index
# expression is compared and matched as PostgreSQL writes it back, and a function call
# reads back the way it was written.
DOCUMENTS = (
    """
    CREATE OR REPLACE FUNCTION chad_run_document(
      name text, request_payload jsonb, result jsonb, error text
    ) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT coalesce(name, '') || ' ' || __schema__.chad_search_json(request_payload) || ' '
             || __schema__.chad_search_json(result) || ' ' || coalesce(error, '')
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION chad_step_document(
      name text, input jsonb, output jsonb, error text
    ) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT coalesce(name, '') || ' ' || __schema__.chad_search_json(input) || ' '
             || __schema__.chad_search_json(output) || ' ' || coalesce(error, '')
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION chad_llm_call_document(
      request jsonb, response jsonb, error text
    ) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT __schema__.chad_search_json(request) || ' '
             || __schema__.chad_search_json(response) || ' ' || coalesce(error, '')
    $$
    """,
)

# (index, table, document): what each table's index holds.
INDEXES = (
    ("ix_runs_search", "runs", "chad_run_document(name, request_payload, result, error)"),
    ("ix_steps_search", "steps", "chad_step_document(name, input, output, error)"),
    ("ix_llm_calls_search", "llm_calls", "chad_llm_call_document(request, response, error)"),
    ("ix_threads_search", "threads", "title"),
    ("ix_messages_search", "messages", "coalesce(content, '')"),
    ("ix_embeddings_search", "embeddings", "coalesce(content, '')"),
)
FUNCTION_SIGNATURES = (
    "chad_run_document(text, jsonb, jsonb, text)",
    "chad_step_document(text, jsonb, jsonb, text)",
    "chad_llm_call_document(jsonb, jsonb, text)",
    "chad_search_vector(text)",
    "chad_cjk_bigrams(text)",
    "chad_search_json(jsonb)",
)


def upgrade() -> None:
    # Index builds and ANALYZE run functions with search_path = pg_catalog (PostgreSQL
    # 17+), so a function calling another names its schema (`__schema__.` below).
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    qualified = '"' + str(schema).replace('"', '""') + '".'
    for statement in (*FUNCTIONS, *DOCUMENTS):
        op.execute(statement.replace("__schema__.", qualified))
    # Inside the revision's transaction, not CONCURRENTLY: a concurrent build waits for
    # every other open transaction, and several processes migrating at once (`serve
    # --workers`) then wait on each other with no deadlock detection. On a large table,
    # build the indexes CONCURRENTLY by hand first (IF NOT EXISTS skips them here).
    for name, table, document in INDEXES:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
            f"USING gin (chad_search_vector({document}))"
        )


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for function in FUNCTION_SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
