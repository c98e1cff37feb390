"""Keep embedding vectors inline in the heap row (STORAGE MAIN) instead of in TOAST.

pgvector's `vector` type defaults to EXTERNAL storage, so a 1536-d vector (6 KB) lives in
the TOAST table and every exact distance computation first fetches it from there (an index
lookup and several chunk reads per row). A search whose filter matches few rows scores
those rows exactly; measured in bench/vectors.py on 100k x 1536, 1,000 such rows took
~20 ms with EXTERNAL. MAIN keeps the vector in the row whenever it fits on a page (any
dimension up to ~2000) and still moves it out of line as a last resort, so large
dimensions keep working. Only rows written after this revision move; rebuild the table
(VACUUM FULL embeddings) to move existing ones.

Revision ID: 005
Revises: 004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "005"
down_revision: str | None = "004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE MAIN")


def downgrade() -> None:
    # EXTERNAL is pgvector's own default for the vector type.
    op.execute("ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE EXTERNAL")
