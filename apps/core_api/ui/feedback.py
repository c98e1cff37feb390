"""/ui feedback: a person's judgement of a run, left on the run's page.

The form posts thumbs up or down, a comment and a value for any configured score; each
becomes a score with source `human` and the signed-in actor as author, written through
`ScoreStore.score_run` (the same rules as `POST /runs/{id}/scores`: ownership, configs).
The form carries the session's CSRF token; a form without it, or from another site, is
refused before anything is written.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from apps.core_api.ui.pages import SignedIn
from apps.core_api.ui.render import render
from apps.core_api.ui.session import codec
from chad_memory.errors import InvalidInputError
from chad_memory.schemas import ScoreConfigRecord, ScoreFields
from chad_memory.stores.scores import check_config

router = APIRouter(prefix="/ui", include_in_schema=False)

THUMBS = "user_thumbs"
FIELD_PREFIX = "score."
MAX_COMMENT = 10_000


def form_value(config: ScoreConfigRecord, raw: str) -> bool | float | str:
    """A form field's text as the config's kind of value, checked against the config."""
    value: bool | float | str = raw
    if config.data_type == "numeric":
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInputError(f"{config.name}: expected a number, got {raw[:40]!r}") from None
    elif config.data_type == "boolean":
        value = raw == "true"
    check_config(config, value)
    return value


@router.post("/runs/{run_id}/feedback")
async def leave_feedback(ui: SignedIn, run_id: uuid.UUID) -> Response:
    form = await ui.request.form()
    if not codec(ui.request).csrf_ok(ui.session, str(form.get("csrf") or "")):
        return render(
            ui.request, "error.html", 403, status=403, detail="Invalid or missing form token."
        )
    comment = str(form.get("comment") or "").strip()[:MAX_COMMENT] or None
    values: dict[str, bool | float | str] = {}
    thumbs = form.get("thumbs")
    if thumbs in ("up", "down"):
        values[THUMBS] = thumbs == "up"
    configs = {c.name: c for c in await ui.scores.list_score_configs(ui.actor)}
    for key, raw in form.multi_items():
        if not key.startswith(FIELD_PREFIX) or not isinstance(raw, str) or not raw.strip():
            continue
        name = key[len(FIELD_PREFIX) :]
        if name not in configs:
            raise InvalidInputError(f"{name[:40]}: no score config of that name")
        values[name] = form_value(configs[name], raw.strip())
    if not values:
        raise InvalidInputError("choose thumbs up or down, or give a score")
    for name, value in values.items():
        fields = ScoreFields(
            name=name, value=value, source="human", comment=comment, author=ui.actor
        )
        await ui.scores.score_run(run_id, fields, actor=ui.actor)
    return RedirectResponse(f"/ui/runs/{run_id}#scores", status_code=303)
