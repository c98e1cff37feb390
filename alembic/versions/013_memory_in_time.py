"""Memory in time: when a memory was true, and versions under a caller's key.

- `embeddings.valid_from` (not null, default now(); existing rows: their created_at) and
  `valid_to` (null while current): a new memory with the same `key` in the same
  namespace closes the current one (valid_to = the new one's valid_from) instead of
  deleting it, so a search `as_of` a past time answers what was true then.
- `embeddings.key` (caller-chosen, optional) and the partial unique index
  `uq_embeddings_actor_namespace_key` over current rows: one current version per key.
- The one-row-per-text index of revision 011 now covers current rows only: a text that
  was superseded may become current again as a new version.

The downgrade keeps every row (closed versions included) and restores 011's index,
which every row satisfies only if no text has two versions; it refuses with the query
to find them otherwise, changing nothing.

Revision ID: 013_memory_in_time
Revises: 012_memory_in_words
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "013_memory_in_time"
down_revision: str | None = "012_memory_in_words"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TWINS = (
    "SELECT actor, namespace, content_hash, count(*) FROM embeddings "
    "WHERE content_hash IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1"
)


def upgrade() -> None:
    op.add_column("embeddings", sa.Column("key", sa.Text(), nullable=True))
    op.add_column("embeddings", sa.Column("valid_from", sa.DateTime(timezone=True)))
    op.add_column("embeddings", sa.Column("valid_to", sa.DateTime(timezone=True)))
    op.execute("UPDATE embeddings SET valid_from = created_at")
    op.alter_column("embeddings", "valid_from", nullable=False, server_default=sa.text("now()"))
    op.create_check_constraint(
        op.f("ck_embeddings_valid_interval"),
        "embeddings",
        "valid_to IS NULL OR valid_to >= valid_from",
    )
    op.create_index(
        "uq_embeddings_actor_namespace_key",
        "embeddings",
        ["actor", "namespace", "key"],
        unique=True,
        postgresql_where=sa.text("key IS NOT NULL AND valid_to IS NULL"),
    )
    op.drop_index("uq_embeddings_actor_namespace_content_hash", table_name="embeddings")
    op.create_index(
        "uq_embeddings_actor_namespace_content_hash",
        "embeddings",
        ["actor", "namespace", "content_hash"],
        unique=True,
        postgresql_where=sa.text("content_hash IS NOT NULL AND valid_to IS NULL"),
    )


def downgrade() -> None:
    twins = op.get_bind().execute(sa.text(TWINS + " LIMIT 1")).first()
    if twins is not None:
        raise RuntimeError(
            "cannot downgrade: a text has more than one version in a namespace (a "
            f"superseded one and a current one); find them with: {TWINS}"
        )
    op.drop_index("uq_embeddings_actor_namespace_content_hash", table_name="embeddings")
    op.create_index(
        "uq_embeddings_actor_namespace_content_hash",
        "embeddings",
        ["actor", "namespace", "content_hash"],
        unique=True,
        postgresql_where=sa.text("content_hash IS NOT NULL"),
    )
    op.drop_index("uq_embeddings_actor_namespace_key", table_name="embeddings")
    op.drop_constraint(op.f("ck_embeddings_valid_interval"), "embeddings", type_="check")
    op.drop_column("embeddings", "valid_to")
    op.drop_column("embeddings", "valid_from")
    op.drop_column("embeddings", "key")
