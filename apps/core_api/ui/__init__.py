"""The dashboard at /ui: server-rendered pages over the same stores as the API.

`install_ui(app, settings)` mounts it: the pages, the vendored static files (htmx, uPlot,
our CSS and JS, all inside the package: nothing is fetched from elsewhere at run time),
the security headers, and HTML answers for errors on /ui paths.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.core_api.ui import experiments, feedback
from apps.core_api.ui.pages import SignInRequired, router
from apps.core_api.ui.render import STATIC, render
from apps.core_api.ui.session import COOKIE, codec

# Everything from this origin, nothing inline: no inline scripts, no style attributes, no
# eval. htmx is configured (meta htmx-config) not to inject its indicator <style>.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def is_dashboard(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


class SecurityHeadersMiddleware:
    """The CSP and friends on every /ui answer, error pages and static files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_dashboard(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not scope["path"].startswith("/ui/static/"):
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_page(request: Request, status: int, detail: str) -> Response:
    """An error on a /ui path as a page (the API's answer is JSON with the same status)."""
    session = codec(request).load(request.cookies.get(COOKIE))
    actor = session.actor if session else None
    return render(request, "error.html", status, status=status, detail=detail, actor=actor)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if request.headers.get("HX-Request"):
        # An htmx poll after the session ended: send the whole page to the sign-in form.
        return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
    target = "/ui/login"
    if exc.next_url not in ("/ui", "/ui/runs"):
        target += "?" + urlencode({"next": exc.next_url})
    return RedirectResponse(target, status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if is_dashboard(request.url.path):
        detail = "No such page." if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, detail)
    return await http_exception_handler(request, exc)


def install_ui(app: FastAPI) -> None:
    app.state.ui_error_page = error_page
    app.include_router(router)
    app.include_router(feedback.router)
    app.include_router(experiments.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)
