"""Costs that OTLP spans reported before they were marked: cost_source 'client'.

Until the OTLP path priced calls through `chad_memory.prices.price_new_calls`, a cost a
span carried (`gen_ai.usage.cost`) was stored with no cost_source. Every other path
marks a kept cost 'client', and revision 007 marked the rows before it the same way, so
a cost with no source can only be one of those. Marking them keeps "where did this cost
come from" answerable for every row and lets recompute treat them like any reported cost.

The downgrade keeps every row as it is: revision 007's schema holds the marked rows
equally well, and which rows were unmarked before cannot be told apart afterwards.

Revision ID: 010
Revises: 007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "010"
down_revision: str | None = "007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE llm_calls SET cost_source = 'client' "
        "WHERE cost_usd IS NOT NULL AND cost_source IS NULL"
    )


def downgrade() -> None:
    """Nothing to undo in the schema; the marked rows stay marked (see above)."""
