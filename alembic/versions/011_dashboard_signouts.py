"""Dashboard sessions that were signed out, so a copied cookie stops working at sign-out.

The session cookie is signed, not stored: without a record of the sign-out, a cookie
copied before it kept opening pages until it expired (12 hours). One row per sign-out,
deleted once that cookie would have expired anyway.

The downgrade drops the table; no user data lives in it (only which sessions ended), and
the code before this revision does not read it.

Revision ID: 011_dashboard_signouts
Revises: 010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "011_dashboard_signouts"
down_revision: str | None = "010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_signouts",
        sa.Column("sid", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid", name="pk_dashboard_signouts"),
    )
    op.create_index("ix_dashboard_signouts_expires_at", "dashboard_signouts", ["expires_at"])


def downgrade() -> None:
    op.drop_table("dashboard_signouts")
