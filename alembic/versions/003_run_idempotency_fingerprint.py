"""Runs remember a fingerprint of the request that created them under an idempotency key.

A retry with the same Idempotency-Key must carry the same body; comparing a SHA-256 of
the canonical body tells a true retry (replay the run) from a reused key (422).

Revision ID: 003
Revises: 002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "003"
down_revision: str | None = "002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("idempotency_fingerprint", sa.Text()))


def downgrade() -> None:
    op.drop_column("runs", "idempotency_fingerprint")
