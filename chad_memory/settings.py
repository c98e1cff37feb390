"""Every knob chad-memory reads, in one place.

Values come from the environment (or a `.env` file in the working directory); names are
case-insensitive, so `DATABASE_URL` and `database_url` are the same setting.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Where the database is. Unset means: start the embedded server under chad_data_dir.
    database_url: str | None = None
    chad_data_dir: Path = Path(".chad-memory/pgdata")

    # Pool: sized for a service that fans out to many concurrent dashboard requests.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_pre_ping: bool = True
    db_pool_timeout: float = Field(default=30.0, gt=0)
    db_pool_recycle: int = Field(default=1800, ge=-1)
    # Server-side cap on any single statement, in milliseconds (0 disables it).
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_application_name: str = "chad-memory"
    # Serialization failures, deadlocks and connections lost before COMMIT are retried:
    # at most this many attempts in all, with jittered exponential backoff from the base.
    db_retry_attempts: int = Field(default=3, ge=1, le=10)
    db_retry_backoff_ms: int = Field(default=50, ge=0, le=10_000)

    # Key for signing pagination cursors; unset: random per process (cursors then do not
    # survive a restart). `chad-memory serve --workers N` shares one among its workers.
    cursor_secret: str | None = None
    # How long a verified API key is trusted without asking the database again: a revoked
    # key keeps working for at most this many seconds in a process that saw it (0: ask
    # every time).
    api_key_cache_seconds: float = Field(default=10.0, ge=0, le=3600)

    # Vector memory. embedding_dim is frozen into the schema when revision 001 runs.
    embedding_dim: int = Field(default=1536, ge=1, le=16_000)
    ivfflat_lists: int = Field(default=100, ge=1, le=32_768)
    # None lets the store pick probes from the index's list count.
    ivfflat_probes: int | None = Field(default=None, ge=1, le=32_768)

    # Service.
    auth_mode: Literal["api_key", "trusted_header"] = "api_key"
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    log_level: str = "info"

    # Dashboard (/ui). The key that signs its session cookies; unset means one generated
    # once and kept in `ui-session-secret` beside chad_data_dir (so restarts keep sessions).
    ui_session_secret: SecretStr | None = None
    ui_session_max_age_s: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        """Accept the URLs people paste (postgres://, postgresql://) and make them asyncpg's."""
        if value is None or not value.strip():
            return None
        return to_asyncpg_url(value.strip())


def to_asyncpg_url(url: str) -> str:
    """Rewrite any PostgreSQL URL scheme to the asyncpg driver SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(
        f"DATABASE_URL must be a PostgreSQL URL, got scheme of {url.split(':', 1)[0]!r}"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
