"""/ui: the dashboard's pages, server-rendered from the same stores the API reads.

Every page resolves the signed-in actor first (`SignedIn`) and loads what it shows with
the store methods the API routes use, with the same `actor=` ownership checks, so
another actor's run answers the same 403 the API does (rendered as a page here).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from apps.core_api.auth import authenticate
from apps.core_api.deps import stores_of
from apps.core_api.ui.render import render
from apps.core_api.ui.session import COOKIE, Session, codec
from apps.core_api.ui.views import usage_series, waterfall
from chad_memory.errors import InvalidInputError
from chad_memory.replicas import RunReads, VectorReads
from chad_memory.schemas import RunFilter, ScoreFilter
from chad_memory.settings import Settings
from chad_memory.stores import ScoreStore, ThreadStore
from chad_memory.vocabulary import LIVE

router = APIRouter(prefix="/ui", include_in_schema=False)

RUNS_PAGE = 50
STEPS_PAGE = 200
# Memories a run page lists in each direction (written, read), newest first.
RUN_MEMORY_ROWS = 50


class SignInRequired(Exception):
    """No (valid) session: the handler in `install_ui` redirects to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


@dataclass
class Ui:
    """One request's view of the dashboard: who is signed in and the stores to read."""

    request: Request
    session: Session
    actor: str
    runs: RunReads
    threads: ThreadStore
    memory: VectorReads
    scores: ScoreStore

    def page(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status_code, actor=self.actor, **context)


def read_session(request: Request) -> Session | None:
    return codec(request).load(request.cookies.get(COOKIE))


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def signed_in(request: Request) -> Ui:
    """The signed-in actor, or SignInRequired. A session ends when its key is revoked
    or when it is signed out (from any copy of its cookie)."""
    settings: Settings = request.app.state.settings
    stores = stores_of(request)
    session = read_session(request)
    if settings.auth_mode != "api_key":
        # Local, or behind an auth proxy: the API's own rule names the actor.
        try:
            actor = await authenticate(request)
        except HTTPException:
            raise SignInRequired(_here(request)) from None
        session = session or codec(request).new(actor)
    else:
        if session is None or session.key_id is None or session.actor is None:
            raise SignInRequired(_here(request))
        key = await stores.keys.get_live_key(session.key_id, session_id=session.sid)
        if key is None or key.actor != session.actor:
            raise SignInRequired(_here(request))
        actor = key.actor
    request.state.actor = actor
    return Ui(
        request=request,
        session=session,
        actor=actor,
        # Pages only read: the read stores, which go to READ_DATABASE_URL when it is set.
        runs=stores.read_runs,
        threads=stores.threads,
        memory=stores.read_vectors,
        scores=stores.scores,
    )


SignedIn = Annotated[Ui, Depends(signed_in)]


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect to another site."""
    if not target or not target.startswith("/ui") or target.startswith("//"):
        return "/ui/runs"
    if any(c in target for c in "\\\r\n"):
        return "/ui/runs"
    return target


def _set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        codec(request).dump(session),
        max_age=codec(request).max_age_s,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# Sign in and out ------------------------------------------------------------------------


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/runs", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    session = read_session(request) or codec(request).new()
    response = render(
        request,
        "login.html",
        csrf=codec(request).csrf_token(session),
        next=_safe_next(next),
        error=None,
    )
    _set_cookie(request, response, session)
    return response


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/ui/runs",
) -> Response:
    session = read_session(request)
    if session is None or not codec(request).csrf_ok(session, csrf):
        fresh = codec(request).new()
        response = render(
            request,
            "login.html",
            403,
            csrf=codec(request).csrf_token(fresh),
            next=_safe_next(next),
            error="The form expired or came from another site. Please sign in again.",
        )
        _set_cookie(request, response, fresh)
        return response
    key = await stores_of(request).keys.authenticate(api_key.strip())
    if key is None:
        return render(
            request,
            "login.html",
            401,
            csrf=codec(request).csrf_token(session),
            next=_safe_next(next),
            error="That API key is unknown or revoked.",
        )
    # A new sid on sign-in: a sid planted before sign-in is worth nothing after it.
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, redirect, codec(request).new(key.actor, key.id))
    return redirect


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    session = read_session(request)
    if session is None or not codec(request).csrf_ok(session, csrf):
        return render(
            request, "error.html", 403, status=403, detail="Invalid or missing form token."
        )
    if session.signed_in:
        # Server-side: a copy of this cookie taken before now stops working too.
        expires = datetime.fromtimestamp(session.expires, UTC)
        await stores_of(request).keys.sign_out(session.sid, expires_at=expires)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# Runs -------------------------------------------------------------------------------------


def _day_bound(text: str, name: str, *, end: bool) -> datetime:
    """A date (the whole day, UTC; `to` is inclusive) or an ISO datetime.

    The day after 9999-12-31 is past `datetime`'s range (OverflowError): such a bound is
    out of range like any other edge date, not a failure of the page.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        value = datetime.fromisoformat(text)
    except OverflowError as exc:
        raise InvalidInputError(f"{name}: outside the storable range") from exc
    except ValueError as exc:
        raise InvalidInputError(f"{name}: expected a date like 2026-01-31") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get("/runs")
async def runs_page(
    ui: SignedIn,
    status: str = "",
    name: str = "",
    tag: str = "",
    thread_id: str = "",
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    cursor: str = "",
) -> HTMLResponse:
    form = {"status": status, "name": name, "tag": tag, "thread_id": thread_id}
    form |= {"from": from_, "to": to}
    try:
        filters = RunFilter(
            actor=ui.actor,
            status=status or None,
            name=name.strip() or None,
            tag=tag.strip() or None,
            thread_id=thread_id.strip() or None,
            created_after=_day_bound(from_.strip(), "from", end=False) if from_.strip() else None,
            created_before=_day_bound(to.strip(), "to", end=True) if to.strip() else None,
        )
        page = await ui.runs.list_run_summaries(
            filters, limit=RUNS_PAGE, cursor=cursor or None, with_total=True, total_cap=10_000
        )
    except (ValidationError, InvalidInputError) as exc:
        message = (
            "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        return ui.page(
            "runs.html",
            422,
            form=form,
            runs=[],
            totals={},
            scores={},
            total=None,
            next_url=None,
            first_url=None,
            filtered=True,
            error=message,
        )
    totals = await ui.runs.get_run_totals([r.id for r in page.items], actor=ui.actor)
    scores = await ui.scores.scores_of_runs([r.id for r in page.items], actor=ui.actor)
    shown = {k: v for k, v in form.items() if v}
    next_url = None
    if page.next_cursor:
        next_url = "/ui/runs?" + urlencode({**shown, "cursor": page.next_cursor})
    return ui.page(
        "runs.html",
        form=form,
        runs=page.items,
        totals=totals,
        scores=scores,
        total=page.total,
        next_url=next_url,
        first_url="/ui/runs?" + urlencode(shown) if cursor else None,
        filtered=bool(shown),
        error=None,
    )


async def _run_context(ui: Ui, run_id: uuid.UUID, cursor: str | None) -> dict[str, Any]:
    # One page of steps (all of them for most runs): a 10,000-step run costs one page.
    page = await ui.runs.get_run_page(run_id, actor=ui.actor, steps_limit=STEPS_PAGE, cursor=cursor)
    run, stats, steps, calls = page.run, page.stats, page.steps, page.llm_calls
    here = f"/ui/runs/{run.id}"
    return {
        "run": run,
        "fall": waterfall(run, steps.items, calls, total=stats.step_count),
        "cursor": cursor,
        "later_url": f"{here}?{urlencode({'cursor': steps.next_cursor})}"
        if steps.next_cursor
        else None,
        "first_url": here if cursor else None,
        "live_url": f"{here}/live" + (f"?{urlencode({'cursor': cursor})}" if cursor else ""),
        "calls": calls,
        "artifacts": page.artifacts,
        "stats": stats,
        "models": stats.by_model,
        "live": run.status in LIVE,
        "memory": await ui.memory.run_memory(run.id, actor=ui.actor, limit=RUN_MEMORY_ROWS),
    }


@router.get("/runs/{run_id}")
async def run_page(ui: SignedIn, run_id: uuid.UUID, cursor: str = "") -> HTMLResponse:
    context = await _run_context(ui, run_id, cursor or None)
    # The scores and the feedback form sit outside the part a live run refreshes.
    scored = await ui.scores.list_scores(ui.actor, ScoreFilter(run_id=run_id), limit=200)
    configs = await ui.scores.list_score_configs(ui.actor)
    fresh = read_session(ui.request) is None  # local / proxy modes: a session for the form
    page = ui.page(
        "run.html",
        **context,
        scores=scored.items,
        configs=configs,
        csrf=codec(ui.request).csrf_token(ui.session),
    )
    if fresh:
        _set_cookie(ui.request, page, ui.session)
    return page


@router.get("/runs/{run_id}/live")
async def run_live(ui: SignedIn, run_id: uuid.UUID, cursor: str = "") -> HTMLResponse:
    """The run's changing part alone, which a running run's page polls for."""
    return ui.page("_run_body.html", **await _run_context(ui, run_id, cursor or None))


# Usage ----------------------------------------------------------------------------------


@router.get("/usage")
async def usage_page(ui: SignedIn) -> HTMLResponse:
    """The last 30 days from the usage roll-ups, every call counted: tokens and cost per
    day and model, latency per day, and the by-model table; one read of three cuts."""
    by_model, by_day_model, by_day = await ui.runs.usage_reports(
        ui.actor, [["provider", "model"], ["day", "model"], ["day"]]
    )
    return ui.page("usage.html", series=usage_series(by_day_model, by_day), report=by_model)


# Conversations --------------------------------------------------------------------------


@router.get("/threads")
async def threads_page(ui: SignedIn, cursor: str = "") -> HTMLResponse:
    page = await ui.threads.list_threads(ui.actor, limit=RUNS_PAGE, cursor=cursor or None)
    next_url = (
        f"/ui/threads?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    )
    return ui.page("threads.html", threads=page.items, next_url=next_url)


@router.get("/threads/{thread_id}")
async def thread_page(ui: SignedIn, thread_id: uuid.UUID, cursor: str = "") -> HTMLResponse:
    thread = await ui.threads.get_thread(thread_id, actor=ui.actor)
    messages = await ui.threads.list_messages(
        thread.id, limit=200, cursor=cursor or None, actor=ui.actor
    )
    runs = await ui.runs.list_run_summaries(
        RunFilter(actor=ui.actor, thread_id=thread.id), limit=RUNS_PAGE
    )
    next_url = None
    if messages.next_cursor:
        next_url = f"/ui/threads/{thread.id}?{urlencode({'cursor': messages.next_cursor})}"
    return ui.page(
        "thread.html", thread=thread, messages=messages.items, runs=runs.items, next_url=next_url
    )


# Memory ---------------------------------------------------------------------------------


@router.get("/memory")
async def memory_page(
    ui: SignedIn,
    namespace: str = "",
    source_type: str = "",
    source_id: str = "",
    valid_at: str = "",
    cursor: str = "",
) -> HTMLResponse:
    form = {
        "namespace": namespace,
        "source_type": source_type,
        "source_id": source_id,
        "valid_at": valid_at,
    }
    shown = {k: v.strip() for k, v in form.items() if v.strip()}
    filters: dict[str, Any] = {k: v for k, v in shown.items() if k != "valid_at"}
    if "valid_at" in shown:
        filters["valid_at"] = _instant(shown["valid_at"], "valid at")
    page = await ui.memory.list_embeddings(
        ui.actor, **filters, limit=RUNS_PAGE, cursor=cursor or None
    )
    namespaces = await ui.memory.count_by_namespace(ui.actor)
    next_url = None
    if page.next_cursor:
        next_url = "/ui/memory?" + urlencode({**shown, "cursor": page.next_cursor})
    return ui.page(
        "memory.html", form=form, items=page.items, namespaces=namespaces, next_url=next_url
    )


def _instant(value: str, name: str) -> datetime:
    """A form's date-time (the browser's datetime-local has no zone: taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be a date and time, e.g. 2026-12-03T17:00") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@router.get("/memory/{embedding_id}")
async def more_like_page(
    ui: SignedIn, embedding_id: uuid.UUID, k: Annotated[int, Query(ge=1, le=100)] = 10
) -> HTMLResponse:
    seed, hits = await ui.memory.more_like(embedding_id, actor=ui.actor, k=k)
    detail = await ui.memory.memory_detail(embedding_id, actor=ui.actor)
    return ui.page("more_like.html", seed=seed, hits=hits, k=k, detail=detail)
