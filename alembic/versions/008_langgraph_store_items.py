"""LangGraph store items: chad_memory.integrations.langgraph.ChadMemoryStore keeps them here.

One row per (actor, namespace, key). The namespace is LangGraph's tuple of labels joined
with "." (LangGraph forbids "." inside a label, so the join is reversible); its C
collation lets the unique btree serve the anchored `LIKE 'a.b.%'` of a namespace-prefix
search. Items' vectors are not here: they are rows of `embeddings` (source_type
'langgraph_store', source_id = store_items.id), so the store searches through the same
vector index, codec and planning as PgVectorStore. `id` is text for that join.

The downgrade drops the table (there is nothing older to keep the items in); the items'
vectors stay in `embeddings` as ordinary embeddings.

Revision ID: 008
Revises: 006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "008"
down_revision: str | None = "006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_items",
        sa.Column(
            "id", sa.Text(), nullable=False, server_default=sa.text("gen_random_uuid()::text")
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(collation="C"), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", pg.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ttl_minutes", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_items")),
        sa.CheckConstraint(
            "ttl_minutes IS NULL OR ttl_minutes > 0", name=op.f("ck_store_items_ttl_positive")
        ),
    )
    op.create_index(
        "uq_store_items_actor_prefix_key",
        "store_items",
        ["actor", "prefix", "key"],
        unique=True,
    )
    op.create_index(
        "ix_store_items_value",
        "store_items",
        ["value"],
        postgresql_using="gin",
        postgresql_ops={"value": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_store_items_expires_at",
        "store_items",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_store_items_expires_at", table_name="store_items")
    op.drop_index("ix_store_items_value", table_name="store_items")
    op.drop_index("uq_store_items_actor_prefix_key", table_name="store_items")
    op.drop_table("store_items")
