"""The dashboard's session: a signed cookie, and the CSRF token tied to it.

The cookie holds `{sid, actor, key, exp}` as base64 JSON plus an HMAC-SHA256 over it, so
the server keeps no session table and a tampered or expired cookie reads as no session;
signing out records the sid (`ApiKeyStore.sign_out`), so a copy of the cookie ends too.
It never holds the API key itself, only the key's id: a page checks the key is still
live, so revoking a key ends its sessions. Every visitor (signed in or not) has a `sid`;
the CSRF token is an HMAC of it, which a forged cross-site form cannot know, and signing
in draws a new `sid` (no session fixation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from chad_memory.settings import Settings

COOKIE = "chad_session"
SECRET_FILE = "ui-session-secret"


def session_secret(settings: Settings) -> bytes:
    """UI_SESSION_SECRET, else the secret kept beside the data directory (made once).

    Beside, not inside: the embedded server's initdb wants an empty data directory.
    O_EXCL makes concurrent first starts (several workers) agree on one secret.
    """
    if settings.ui_session_secret is not None:
        value = settings.ui_session_secret.get_secret_value()
        if len(value) < 16:
            raise ValueError("UI_SESSION_SECRET must be at least 16 characters")
        return value.encode()
    path = Path(settings.chad_data_dir).resolve().parent / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be between create and write
            text = path.read_text().strip()
            if text:
                return text.encode()
            time.sleep(0.02)
        raise ValueError(f"{path} is empty; delete it to have a new secret made") from None
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Session:
    sid: str
    actor: str | None = None
    key_id: uuid.UUID | None = None
    expires: int = 0

    @property
    def signed_in(self) -> bool:
        return self.actor is not None


class SessionCodec:
    """Signs and reads session cookies, and makes and checks CSRF tokens."""

    def __init__(self, secret: bytes, max_age_s: int) -> None:
        self._key = hashlib.sha256(b"chad-memory/ui/session\x00" + secret).digest()
        self._csrf_key = hashlib.sha256(b"chad-memory/ui/csrf\x00" + secret).digest()
        self.max_age_s = max_age_s

    def new(self, actor: str | None = None, key_id: uuid.UUID | None = None) -> Session:
        return Session(
            sid=secrets.token_urlsafe(18),
            actor=actor,
            key_id=key_id,
            expires=int(time.time()) + self.max_age_s,
        )

    def dump(self, session: Session) -> str:
        body = json.dumps(
            {
                "sid": session.sid,
                "actor": session.actor,
                "key": str(session.key_id) if session.key_id else None,
                "exp": session.expires,
            },
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None if absent, tampered with, malformed or expired."""
        if not cookie or len(cookie) > 1024 or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not _same(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(
                sid=str(data["sid"]),
                actor=None if data["actor"] is None else str(data["actor"]),
                key_id=None if data["key"] is None else uuid.UUID(data["key"]),
                expires=int(data["exp"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and _same(token, self.csrf_token(session))

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _same(sent: str, expected: str) -> bool:
    """Constant-time equality for any text a client sends: `hmac.compare_digest` refuses
    str with non-ASCII characters (TypeError), so both sides are compared as UTF-8."""
    return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())


def codec(request: Request) -> SessionCodec:
    """The app's codec, made on first use: importing the app writes no secret file."""
    state = request.app.state
    found: SessionCodec | None = getattr(state, "ui_sessions", None)
    if found is None:
        settings: Settings = state.settings
        found = SessionCodec(session_secret(settings), settings.ui_session_max_age_s)
        state.ui_sessions = found
    return found
