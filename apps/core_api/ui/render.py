"""Templates: one autoescaping Jinja2 environment over the package's templates folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from apps.core_api.ui import views
from apps.core_api.ui.session import COOKIE, codec
from chad_memory.vocabulary import RUN_STATUSES

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
# Bumped with the vendored files, so browsers never keep a stale copy.
ASSET_VERSION = "2"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    when=views.when,
    duration=views.duration,
    usd=views.usd,
    number=views.number,
    pretty=views.pretty_json,
    run_duration=views.run_duration,
    last_line=views.last_line,
    tool_name=views.tool_call_name,
)
_env.globals["asset_version"] = ASSET_VERSION
_env.globals["run_statuses"] = RUN_STATUSES


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page, with the sign-out form's CSRF token when a session exists."""
    sessions = codec(request)
    session = sessions.load(request.cookies.get(COOKIE))
    context.setdefault("actor", None)
    context.setdefault("csrf", sessions.csrf_token(session) if session else "")
    context["path"] = request.url.path
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)
