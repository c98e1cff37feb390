"""Who is calling, and may they touch this run or thread: resolved once, in dependencies.

Default: `Authorization: Bearer <api key>`. With AUTH_MODE=trusted_header the actor is
taken from `X-Actor-ID`, which only makes sense behind an auth proxy that sets it; in the
default mode that header is ignored entirely. With AUTH_MODE=local every request acts as
LOCAL_ACTOR without credentials: one person's app on their own machine. `serve` refuses
to listen beyond loopback in that mode, and requests from other machines are refused
here too, for a server started some other way (plain uvicorn on 0.0.0.0).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from apps.core_api.deps import RunStoreDep, ThreadStoreDep
from chad_memory.errors import InvalidInputError
from chad_memory.schemas import RunRecord, ThreadRecord
from chad_memory.settings import Settings, is_loopback
from chad_memory.stores.keys import ApiKeyStore
from chad_memory.validation import check_actor

bearer = HTTPBearer(auto_error=False, description="An API key from `chad-memory keys create`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_actor_id: Annotated[str | None, Header(alias="X-Actor-ID", include_in_schema=False)] = None,
) -> str:
    settings: Settings = request.app.state.settings
    if settings.auth_mode == "local":
        if request.client is None or not is_loopback(request.client.host):
            raise _unauthorized("AUTH_MODE=local answers requests from this machine only")
        request.state.actor = settings.local_actor
        return settings.local_actor
    if settings.auth_mode == "trusted_header":
        actor = (x_actor_id or "").strip()
        try:
            check_actor(actor)
        except InvalidInputError:
            raise _unauthorized("X-Actor-ID header is missing or invalid") from None
        request.state.actor = actor
        return actor
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer API key")
    keys: ApiKeyStore = request.app.state.key_store
    key = await keys.authenticate(credentials.credentials)
    if key is None:
        raise _unauthorized("unknown or revoked API key")
    request.state.actor = key.actor
    return key.actor


CurrentActor = Annotated[str, Depends(current_actor)]


async def owned_run(run_id: uuid.UUID, actor: CurrentActor, store: RunStoreDep) -> RunRecord:
    """The run named in the path: 404 if unknown, 403 if another actor's, 422 if malformed."""
    return await store.get_run(run_id, actor=actor)


OwnedRun = Annotated[RunRecord, Depends(owned_run)]


async def owned_thread(
    thread_id: uuid.UUID, actor: CurrentActor, threads: ThreadStoreDep
) -> ThreadRecord:
    """The thread named in the path: 404 if unknown, 403 if another actor's, 422 if malformed."""
    return await threads.get_thread(thread_id, actor=actor)


OwnedThread = Annotated[ThreadRecord, Depends(owned_thread)]
