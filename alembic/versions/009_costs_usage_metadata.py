"""Exact costs, a price table, hourly usage roll-ups, and GIN indexes for metadata filters.

- llm_calls: cost_usd widens from numeric(18, 8) to numeric(30, 20), exactly what the
  input accepts (10 integer digits, 20 decimals), so nothing is rounded on the way in.
  New token columns cached_tokens, cache_write_tokens (both part of prompt_tokens, as in
  OpenTelemetry GenAI) and reasoning_tokens (part of completion_tokens); cost_source
  (`client` or `table`), price_id and price_ref say where a cost came from. `actor` is
  copied from the run (a BEFORE INSERT trigger, so every insert path gets it) because the
  usage roll-up must still know whose a call was while a cascade deletes it.
- model_prices: the user's own prices per million tokens, by model pattern and start date.
- llm_usage_hourly / llm_usage_runs: per actor, hour, provider, model (and latency bucket)
  sums, and which runs had calls there, kept by statement-level triggers on llm_calls
  (inserts, updates such as a cost recompute, deletes including cascades), so usage
  analytics read a few thousand rows instead of every call.
- GIN (jsonb_path_ops) on runs.metadata, threads.metadata and messages.metadata serve
  `metadata @> ...` filters.

The downgrade keeps every row; cost_usd goes back to numeric(18, 8), which rounds costs
that have more than 8 decimals (the old column could not hold them).

Revision ID: 007
Revises: 008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "007"
down_revision: str | None = "008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICE = sa.Numeric(20, 10)

# Quarter-octave latency buckets: bucket b >= 1 holds [2^((b-1)/4), 2^(b/4)) ms, bucket 0
# holds [0, 1) ms, -1 means no latency. chad_memory/stores/analytics.py reads percentiles
# from them; a bucket is at most 19% wide.
LATENCY_BUCKET_FN = """
CREATE FUNCTION chad_latency_bucket(latency_ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN latency_ms IS NULL THEN -1
        WHEN latency_ms < 1 THEN 0
        ELSE 1 + floor(4 * ln(latency_ms) / ln(2::double precision))::integer
    END
$$
"""

SET_ACTOR_FN = """
CREATE FUNCTION chad_llm_calls_set_actor() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT actor INTO NEW.actor FROM runs WHERE id = NEW.run_id;
    IF NEW.actor IS NULL THEN
        -- The same error the foreign key would raise, before NOT NULL gets a say.
        RAISE EXCEPTION 'run % does not exist', NEW.run_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_llm_calls_run_id_runs';
    END IF;
    RETURN NEW;
END
$$
"""

# A frozen copy of the roll-up's sums as this revision created them. The live definition
# is chad_memory/stores/analytics.py (_SUMS and _RAW_SUMS, which the reports read); a
# migration must not import it, since it has to build the schema of its own day. A new
# sum is a new revision that changes both.
_SUMS = (
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "costed_calls",
    "latency_ms_sum",
)


def _rollup_insert(rows: str, sign: str) -> str:
    """Add (sign '+') or subtract (sign '-') one transition table's rows to the roll-up.

    Keys are visited in order, so concurrent writers lock roll-up rows in the same order.
    """
    updates = ", ".join(f"{c} = h.{c} + excluded.{c}" for c in _SUMS)
    return f"""
    INSERT INTO llm_usage_hourly AS h (actor, hour, provider, model, latency_bucket,
        {", ".join(_SUMS)})
    SELECT actor, date_trunc('hour', created_at, 'UTC'), coalesce(provider, ''),
        coalesce(model, ''), chad_latency_bucket(latency_ms),
        {sign}count(*), {sign}count(*) FILTER (WHERE status = 'failed'),
        {sign}sum(prompt_tokens), {sign}sum(completion_tokens), {sign}sum(total_tokens),
        {sign}sum(cached_tokens), {sign}sum(cache_write_tokens), {sign}sum(reasoning_tokens),
        {sign}coalesce(sum(cost_usd), 0), {sign}count(cost_usd),
        {sign}coalesce(sum(latency_ms), 0)
    FROM {rows}
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (actor, hour, provider, model, latency_bucket) DO UPDATE SET {updates};
    """


ROLLUP_FN = f"""
CREATE FUNCTION chad_llm_usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        {_rollup_insert("old_rows", "-")}
        DELETE FROM llm_usage_hourly h
        USING (SELECT DISTINCT actor, date_trunc('hour', created_at, 'UTC') AS hour
               FROM old_rows) o
        WHERE h.actor = o.actor AND h.hour = o.hour AND h.calls = 0;
        DELETE FROM llm_usage_runs u
        USING (SELECT DISTINCT actor, date_trunc('hour', created_at, 'UTC') AS hour,
                      coalesce(provider, '') AS provider, coalesce(model, '') AS model, run_id
               FROM old_rows) o
        WHERE (u.actor, u.hour, u.provider, u.model, u.run_id)
              = (o.actor, o.hour, o.provider, o.model, o.run_id)
          AND NOT EXISTS (
              SELECT 1 FROM llm_calls c
              WHERE c.run_id = o.run_id
                AND c.created_at >= o.hour AND c.created_at < o.hour + interval '1 hour'
                AND coalesce(c.provider, '') = o.provider AND coalesce(c.model, '') = o.model);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_rollup_insert("new_rows", "")}
        INSERT INTO llm_usage_runs (actor, hour, provider, model, run_id)
        SELECT DISTINCT actor, date_trunc('hour', created_at, 'UTC'), coalesce(provider, ''),
               coalesce(model, ''), run_id
        FROM new_rows
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = (
    "CREATE TRIGGER llm_calls_set_actor BEFORE INSERT ON llm_calls "
    "FOR EACH ROW EXECUTE FUNCTION chad_llm_calls_set_actor()",
    "CREATE TRIGGER llm_calls_usage_insert AFTER INSERT ON llm_calls "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION chad_llm_usage_rollup()",
    "CREATE TRIGGER llm_calls_usage_update AFTER UPDATE ON llm_calls "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION chad_llm_usage_rollup()",
    "CREATE TRIGGER llm_calls_usage_delete AFTER DELETE ON llm_calls "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION chad_llm_usage_rollup()",
)


def _tokens(name: str) -> sa.Column[sa.Integer]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def _sum(name: str) -> sa.Column[sa.BigInteger]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    # Writers wait while the roll-up is back-filled, so no call is counted twice or never.
    op.execute("LOCK TABLE llm_calls IN SHARE ROW EXCLUSIVE MODE")

    op.create_table(
        "model_prices",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("actor", sa.Text()),
        sa.Column("provider", sa.Text()),
        sa.Column("model_pattern", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_mtok", PRICE, nullable=False),
        sa.Column("cached_input_mtok", PRICE),
        sa.Column("cache_write_mtok", PRICE),
        sa.Column("output_mtok", PRICE, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_prices"),
        sa.CheckConstraint(
            "input_mtok >= 0 AND output_mtok >= 0 AND coalesce(cached_input_mtok, 0) >= 0 "
            "AND coalesce(cache_write_mtok, 0) >= 0",
            name="ck_model_prices_prices_nonnegative",
        ),
    )
    op.create_index(
        "uq_model_prices_actor_provider_model_pattern_starts_at",
        "model_prices",
        ["actor", "provider", "model_pattern", "starts_at"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )

    op.alter_column(
        "llm_calls", "cost_usd", type_=sa.Numeric(30, 20), existing_type=sa.Numeric(18, 8)
    )
    op.add_column("llm_calls", sa.Column("actor", sa.Text()))
    op.add_column("llm_calls", _tokens("cached_tokens"))
    op.add_column("llm_calls", _tokens("cache_write_tokens"))
    op.add_column("llm_calls", _tokens("reasoning_tokens"))
    op.add_column("llm_calls", sa.Column("cost_source", sa.Text()))
    op.add_column("llm_calls", sa.Column("price_id", pg.UUID(as_uuid=True)))
    op.add_column("llm_calls", sa.Column("price_ref", sa.Text()))
    op.create_foreign_key(
        "fk_llm_calls_price_id_model_prices",
        "llm_calls",
        "model_prices",
        ["price_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        op.f("ck_llm_calls_cost_source"), "llm_calls", "cost_source IN ('client', 'table')"
    )
    op.create_check_constraint(
        op.f("ck_llm_calls_token_parts"),
        "llm_calls",
        "cached_tokens >= 0 AND cache_write_tokens >= 0 AND reasoning_tokens >= 0 "
        "AND cached_tokens::bigint + cache_write_tokens <= prompt_tokens "
        "AND reasoning_tokens <= completion_tokens",
    )
    op.execute(
        "UPDATE llm_calls SET actor = runs.actor, "
        "cost_source = CASE WHEN llm_calls.cost_usd IS NULL THEN NULL ELSE 'client' END "
        "FROM runs WHERE runs.id = llm_calls.run_id"
    )
    op.alter_column("llm_calls", "actor", nullable=False)
    op.create_index("ix_llm_calls_actor_created_at", "llm_calls", ["actor", "created_at"])
    op.create_index("ix_llm_calls_price_id", "llm_calls", ["price_id"])

    op.create_table(
        "llm_usage_hourly",
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("latency_bucket", sa.Integer(), nullable=False),
        *(_sum(c) for c in _SUMS if c not in ("cost_usd", "latency_ms_sum")),
        sa.Column("cost_usd", sa.Numeric(), nullable=False),
        sa.Column("latency_ms_sum", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(
            "actor", "hour", "provider", "model", "latency_bucket", name="pk_llm_usage_hourly"
        ),
    )
    op.create_table(
        "llm_usage_runs",
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "actor", "hour", "provider", "model", "run_id", name="pk_llm_usage_runs"
        ),
    )
    op.execute(LATENCY_BUCKET_FN)
    op.execute(SET_ACTOR_FN)
    op.execute(ROLLUP_FN)
    # Back-fill from the calls already stored, then keep up through the triggers.
    op.execute(_rollup_insert("llm_calls", ""))
    op.execute(
        "INSERT INTO llm_usage_runs (actor, hour, provider, model, run_id) "
        "SELECT DISTINCT actor, date_trunc('hour', created_at, 'UTC'), coalesce(provider, ''), "
        "coalesce(model, ''), run_id FROM llm_calls"
    )
    for trigger in TRIGGERS:
        op.execute(trigger)

    for table in ("runs", "threads", "messages"):
        op.create_index(
            f"ix_{table}_metadata",
            table,
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    for table in ("runs", "threads", "messages"):
        op.drop_index(f"ix_{table}_metadata", table_name=table)
    for name in ("usage_delete", "usage_update", "usage_insert", "set_actor"):
        op.execute(f"DROP TRIGGER llm_calls_{name} ON llm_calls")
    op.execute("DROP FUNCTION chad_llm_usage_rollup()")
    op.execute("DROP FUNCTION chad_llm_calls_set_actor()")
    op.execute("DROP FUNCTION chad_latency_bucket(double precision)")
    op.drop_table("llm_usage_runs")
    op.drop_table("llm_usage_hourly")
    op.drop_index("ix_llm_calls_price_id", table_name="llm_calls")
    op.drop_index("ix_llm_calls_actor_created_at", table_name="llm_calls")
    op.drop_constraint(op.f("ck_llm_calls_token_parts"), "llm_calls", type_="check")
    op.drop_constraint(op.f("ck_llm_calls_cost_source"), "llm_calls", type_="check")
    op.drop_constraint("fk_llm_calls_price_id_model_prices", "llm_calls", type_="foreignkey")
    for column in (
        "price_ref",
        "price_id",
        "cost_source",
        "reasoning_tokens",
        "cache_write_tokens",
        "cached_tokens",
        "actor",
    ):
        op.drop_column("llm_calls", column)
    # Rounds costs with more than 8 decimals: the old column cannot hold them.
    op.alter_column(
        "llm_calls", "cost_usd", type_=sa.Numeric(18, 8), existing_type=sa.Numeric(30, 20)
    )
    op.drop_index(
        "uq_model_prices_actor_provider_model_pattern_starts_at", table_name="model_prices"
    )
    op.drop_table("model_prices")
