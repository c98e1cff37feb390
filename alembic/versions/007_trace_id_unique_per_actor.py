"""trace_id is unique per actor, no longer across all actors.

With one global unique index, a second actor creating a run with a trace id that another
actor already used got a 409: it learnt that the id exists, and could claim ids another
actor would send later (OTLP trace ids come from the traced application). Uniqueness per
(actor, trace_id) keeps "one run per trace" for each actor and tells nobody anything
about the others. Existing rows all satisfy the new rule (the old one was stricter).

Downgrade restores the global rule only when the data allows it: if two actors now
share a trace id it stops with a message naming how many, and changes nothing. Which
run would keep the id is not ours to decide; the operator can clear or rename those
trace ids (the message gives the query) and run the downgrade again.

Revision ID: 006
Revises: 013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "006"
down_revision: str | None = "013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARED_TRACE_IDS = (
    "SELECT trace_id, count(DISTINCT actor) AS actors FROM runs "
    "WHERE trace_id IS NOT NULL GROUP BY trace_id HAVING count(DISTINCT actor) > 1"
)


def upgrade() -> None:
    op.drop_constraint("uq_runs_trace_id", "runs", type_="unique")
    op.create_unique_constraint("uq_runs_actor_trace_id", "runs", ["actor", "trace_id"])


def downgrade() -> None:
    shared = op.get_bind().scalar(sa.text(f"SELECT count(*) FROM ({SHARED_TRACE_IDS}) AS s"))
    if shared:
        raise RuntimeError(
            f"cannot downgrade below revision 006: {shared} trace id(s) are used by more "
            "than one actor, and the revisions before 006 allow each trace id once across all "
            "actors. "
            f"Nothing was changed. Find them with: {SHARED_TRACE_IDS}; clear or rename the "
            "trace_id of all but one actor's run for each, then downgrade again."
        )
    op.drop_constraint("uq_runs_actor_trace_id", "runs", type_="unique")
    op.create_unique_constraint("uq_runs_trace_id", "runs", ["trace_id"])
