"""Who is calling, and may they touch this run or thread: resolved once per request.

Default: `Authorization: Bearer <api key>`. With AUTH_MODE=trusted_header the actor is
taken from `X-Actor-ID`, which only makes sense behind an auth proxy that sets it; in the
default mode that header is ignored entirely. With AUTH_MODE=local every request acts as
LOCAL_ACTOR without credentials: one person's app on their own machine. `serve` refuses
to listen beyond loopback in that mode, and requests from other machines are refused
here too, for a server started some other way (plain uvicorn on 0.0.0.0).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from apps.core_api.deps import Stores, stores_of
from chad_memory.errors import InvalidInputError
from chad_memory.replicas import RunReads, VectorReads
from chad_memory.schemas import RunRecord, ThreadRecord
from chad_memory.settings import Settings, is_loopback
from chad_memory.stores import (
    DatasetStore,
    ExperimentStore,
    PgVectorStore,
    PostgresStore,
    PriceStore,
    ScoreStore,
    ThreadStore,
    TraceStore,
)
from chad_memory.stores.keys import ApiKeyStore
from chad_memory.stores.span_logs import SpanLogStore
from chad_memory.validation import check_actor


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


# The request bodies a page on another site may send without a CORS preflight.
_SIMPLE_MEDIA_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A header no page can add without a preflight: a client may send it to say "not a form".
LOCAL_WRITE_HEADER = "X-Requested-With"


def _host_name(host: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _check_local_request(request: Request, settings: Settings) -> None:
    """Local mode's rules for a browser on this machine, beyond the peer address.

    The Host must be a loopback name: a DNS-rebinding page reaches 127.0.0.1 under its
    own host name, which the browser then treats as that page's origin. And a write
    from a page of another origin must be one a browser would have preflighted (a
    non-form media type, or LOCAL_WRITE_HEADER), which CORS_ORIGINS then governs; a
    "simple" cross-site request (a form post, a bodiless fetch) is refused before it
    writes. Requests without an Origin header do not come from another site's page
    (browsers send Origin on every cross-origin write), so command-line clients and
    AgentKit's own tests are unaffected.
    """
    if not is_loopback(_host_name(request.headers.get("host", ""))):
        raise HTTPException(
            status_code=403,
            detail="AUTH_MODE=local answers only requests addressed to localhost, "
            "127.0.0.1 or [::1] (the Host header)",
        )
    origin = request.headers.get("origin")
    if request.method not in _WRITES or origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    allowed = settings.cors_origins
    if origin.lower() == own or origin.lower() in allowed or "*" in allowed:
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type not in _SIMPLE_MEDIA_TYPES:
        return
    if LOCAL_WRITE_HEADER in request.headers:
        return
    raise HTTPException(
        status_code=403,
        detail="AUTH_MODE=local: a write from another origin must send JSON (or the "
        f"{LOCAL_WRITE_HEADER} header), or come from an origin in CORS_ORIGINS",
    )


class NotAuthenticated(Exception):
    """No actor for these credentials; the message says why (HTTP 401, gRPC UNAUTHENTICATED)."""


async def actor_for(
    settings: Settings,
    keys: ApiKeyStore,
    *,
    authorization: str | None,
    actor_header: str | None,
    client_host: str | None,
) -> str:
    """The actor that credentials act as, by AUTH_MODE: one rule for every transport
    (HTTP headers, gRPC metadata)."""
    if settings.auth_mode == "local":
        if client_host is None or not is_loopback(client_host):
            raise NotAuthenticated("AUTH_MODE=local answers requests from this machine only")
        return settings.local_actor
    if settings.auth_mode == "trusted_header":
        actor = (actor_header or "").strip()
        try:
            check_actor(actor)
        except InvalidInputError:
            raise NotAuthenticated("X-Actor-ID header is missing or invalid") from None
        return actor
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise NotAuthenticated("missing bearer API key")
    key = await keys.authenticate(secret)
    if key is None:
        raise NotAuthenticated("unknown or revoked API key")
    return key.actor


async def authenticate(request: Request) -> str:
    """The actor this request acts as (also left in `request.state.actor` for the access
    log), or 401."""
    try:
        actor = await actor_for(
            request.app.state.settings,
            stores_of(request).keys,
            authorization=request.headers.get("Authorization"),
            actor_header=request.headers.get("X-Actor-ID"),
            client_host=None if request.client is None else request.client.host,
        )
    except NotAuthenticated as exc:
        raise _unauthorized(str(exc)) from None
    settings: Settings = request.app.state.settings
    if settings.auth_mode == "local":
        _check_local_request(request, settings)
    request.state.actor = actor
    return actor


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and the app's stores: what a route needs, as one dependency.

    FastAPI resolves every dependency (and its parameters) on every request, at a cost
    of its own (bench/fastapi_deps.py); routes declare this one instead of an actor and
    a store. Writes (and reads that must see them) use `runs`, `vectors`, ...; reads
    that may lag use `read_runs` / `read_vectors`, typed to hold reads only.
    """

    actor: str
    stores: Stores

    @property
    def runs(self) -> PostgresStore:
        return self.stores.runs

    @property
    def read_runs(self) -> RunReads:
        """For reads that may lag: on the read replica when READ_DATABASE_URL is set."""
        return self.stores.read_runs

    @property
    def vectors(self) -> PgVectorStore:
        return self.stores.vectors

    @property
    def read_vectors(self) -> VectorReads:
        return self.stores.read_vectors

    @property
    def threads(self) -> ThreadStore:
        return self.stores.threads

    @property
    def prices(self) -> PriceStore:
        return self.stores.prices

    @property
    def traces(self) -> TraceStore:
        return self.stores.traces

    @property
    def logs(self) -> SpanLogStore:
        return self.stores.logs

    @property
    def scores(self) -> ScoreStore:
        return self.stores.scores

    @property
    def datasets(self) -> DatasetStore:
        return self.stores.datasets

    @property
    def experiments(self) -> ExperimentStore:
        return self.stores.experiments


class ApiKeyAuth(SecurityBase):
    """`authenticate` as the dependency that OpenAPI documents as HTTP bearer auth."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="An API key from `chad-memory keys create`")
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request) -> Caller:
        return Caller(await authenticate(request), stores_of(request))


api_key_auth = ApiKeyAuth()
CurrentCaller = Annotated[Caller, Depends(api_key_auth)]


async def _actor_of(caller: CurrentCaller) -> str:
    return caller.actor


CurrentActor = Annotated[str, Depends(_actor_of)]


async def owned_run(run_id: uuid.UUID, caller: CurrentCaller) -> RunRecord:
    """The run named in the path: 404 if unknown, 403 if another actor's, 422 if malformed."""
    return await caller.runs.get_run(run_id, actor=caller.actor)


OwnedRun = Annotated[RunRecord, Depends(owned_run)]


async def owned_thread(thread_id: uuid.UUID, caller: CurrentCaller) -> ThreadRecord:
    """The thread named in the path: 404 if unknown, 403 if another actor's, 422 if malformed."""
    return await caller.threads.get_thread(thread_id, actor=caller.actor)


OwnedThread = Annotated[ThreadRecord, Depends(owned_thread)]
