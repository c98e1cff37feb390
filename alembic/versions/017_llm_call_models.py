"""One model, two names: llm_calls keeps the request model and the response model.

A call asks for a model (`gpt-4o-mini`) and is answered by a snapshot of it
(`gpt-4o-mini-2024-07-18`). OTLP stored the response's name, the LangChain tracer the
request's, so usage split one model into two rows. Both names are now kept, and `model`
(what usage and analytics group by) follows one rule for every path: the request model,
else the response model (chad_memory.schemas.usage_model).

Calls stored from OTLP spans (their step's metadata holds `otel`) take their names from
what they kept, request->>'model' and response->>'model' (`gen_ai.request.model` /
`gen_ai.response.model`), and one whose model was the response's name while a request
model is known is renamed to the request model, as the rule says (the usage roll-up
triggers move its sums with it). Other calls are left as they were sent: which names
they meant is not recorded. The downgrade drops the two columns;
`model` keeps the rule's name, and the two names stay in request/response.

Revision ID: 017_llm_call_models
Revises: 016_llm_call_started_at
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "017_llm_call_models"
down_revision: str | None = "016_llm_call_started_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only text names fit the columns; a number or object under "model" is left where it is.
_NAME = (
    "CASE WHEN jsonb_typeof({col} -> 'model') = 'string' "
    "AND length({col} ->> 'model') BETWEEN 1 AND 512 THEN {col} ->> 'model' END"
)

_FROM_OTLP = "EXISTS (SELECT 1 FROM steps s WHERE s.id = llm_calls.step_id AND s.metadata ? 'otel')"


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("request_model", sa.Text()))
    op.add_column("llm_calls", sa.Column("response_model", sa.Text()))
    request_name = _NAME.format(col="request")
    response_name = _NAME.format(col="response")
    op.execute(
        f"UPDATE llm_calls SET request_model = {request_name}, "
        f"response_model = {response_name} "
        f"WHERE {_FROM_OTLP}"
    )
    op.execute(
        "UPDATE llm_calls SET model = request_model "
        "WHERE request_model IS NOT NULL AND model IS NOT DISTINCT FROM response_model "
        f"AND model IS DISTINCT FROM request_model AND {_FROM_OTLP}"
    )


def downgrade() -> None:
    op.drop_column("llm_calls", "response_model")
    op.drop_column("llm_calls", "request_model")
