"""Every knob chad-memory reads, in one place.

Values come from the environment (or a `.env` file in the working directory); names are
case-insensitive, so `DATABASE_URL` and `database_url` are the same setting.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chad_memory.poolers import Pooler
from chad_memory.validation import check_actor


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Where the database is. Unset means: start the embedded server under chad_data_dir.
    database_url: str | None = None
    # What stands between us and PostgreSQL (chad_memory.poolers): "none" or "session"
    # (a server connection per client connection), or "transaction" (PgBouncer in
    # transaction mode, Supavisor, Neon's pooler): no named prepared statements, no
    # session state.
    db_pooler: Pooler = "none"
    # A URL with a session of its own (the server, or a session-mode pooler) for work a
    # transaction pooler cannot carry: migrations, vector index builds and calibration.
    # Unset: DATABASE_URL.
    direct_database_url: str | None = None
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
    # None: searches use the probes the index's calibration chose; a number overrides it.
    ivfflat_probes: int | None = Field(default=None, ge=1, le=32_768)
    # Recall@10 against exact search that every index build calibrates for (probes or
    # ef_search are raised until a sample of the stored vectors reaches it).
    vector_target_recall: float = Field(default=0.95, gt=0, le=1)
    # An IVFFLAT index whose table has doubled since it was built is rebuilt in the
    # background (CONCURRENTLY); false: it is only announced in the logs and /health.
    vector_auto_rebuild: bool = True

    # Memory in words (chad_memory.embedders): who turns `content` and `query` text into
    # vectors. none: callers send vectors. openai: an OpenAI-compatible /embeddings endpoint
    # (OpenAI, Azure-style deployment URLs, Ollama, vLLM, TEI, LM Studio). local: a CPU model
    # shipped inside a PyPI package (extra `local`), nothing downloaded at run time.
    embedder: Literal["none", "openai", "local"] = "none"
    embedder_base_url: str = "https://api.openai.com/v1"
    embedder_model: str | None = None
    embedder_api_key: SecretStr | None = None
    # Sent as `dimensions` to endpoints that shorten vectors (text-embedding-3-*).
    embedder_dimensions: int | None = Field(default=None, ge=1, le=16_000)
    embedder_batch_size: int = Field(default=100, ge=1, le=2048)
    embedder_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Further attempts after a connection failure, a timeout, 429 or 5xx.
    embedder_retries: int = Field(default=2, ge=0, le=10)

    # A streaming replica for dashboard reads (chad_memory.replicas); unset: all on primary.
    read_database_url: str | None = None
    # How long reads stay on the primary after the replica was found unreachable.
    read_replica_cooldown_seconds: float = Field(default=5.0, ge=0)

    # Retention: when set, the service deletes runs older than this many days in the
    # background (chad_memory.retention), every retention_interval_seconds.
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    retention_interval_seconds: int = Field(default=3600, ge=10)
    # Also delete embeddings tied to pruned runs (default: keep them, unlinked).
    retention_embeddings: bool = False

    # Service.
    # api_key: `Authorization: Bearer <key>`. trusted_header: `X-Actor-ID` from an auth
    # proxy. local: no credentials, every request acts as `local_actor`; for one person's
    # app on their own machine, so `serve` listens on loopback only in this mode.
    auth_mode: Literal["api_key", "trusted_header", "local"] = "api_key"
    local_actor: str = "local"
    # Browser origins allowed to call the API (CORS), comma-separated in the environment,
    # e.g. CORS_ORIGINS=http://localhost:5173. Empty: no cross-origin browser access.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # OTLP over gRPC (`chad-memory serve --otlp-grpc-port 4317`): off unless a port is set.
    otlp_grpc_port: int | None = Field(default=None, ge=1, le=65535)
    otlp_grpc_host: str = "127.0.0.1"
    # Spans in one OTLP export (POST /v1/traces, `export_traces`): past it, 413. Bounds
    # the work one export causes (mapping is about 50 us a span); the OpenTelemetry SDK
    # sends at most 512 per export, a collector's batch processor 8,192 by default.
    max_spans_per_export: int = Field(default=10_000, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    log_level: str = "info"

    # Dashboard (/ui). The key that signs its session cookies; unset means one generated
    # once and kept in `ui-session-secret` beside chad_data_dir (so restarts keep sessions).
    ui_session_secret: SecretStr | None = None
    ui_session_max_age_s: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)

    @field_validator("database_url", "read_database_url", "direct_database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        """Accept the URLs people paste (postgres://, postgresql://) and make them asyncpg's."""
        if value is None or not value.strip():
            return None
        return to_asyncpg_url(value.strip())

    @field_validator("local_actor")
    @classmethod
    def _local_actor_is_an_actor(cls, value: str) -> str:
        return check_actor(value, "LOCAL_ACTOR")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [to_origin(item) if isinstance(item, str) else item for item in value]
        return value


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


def to_origin(value: str) -> str:
    """A CORS origin as browsers send it in `Origin`, or "*": scheme://host[:port].

    Browsers compare origins as exact strings, so an entry with a path or a trailing
    slash would silently never match; it is refused instead. Scheme and host are
    case-insensitive and browsers send them lowercase, so they are lowercased here.
    """
    if value == "*":
        return value
    parts = urlsplit(value)
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
        or value.endswith(("?", "#"))
    ):
        raise ValueError(
            f"CORS_ORIGINS entry {value!r} is not an origin: write scheme://host[:port], "
            "with no path and no trailing slash (e.g. http://localhost:5173), or *"
        )
    try:
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError as exc:
        raise ValueError(f"CORS_ORIGINS entry {value!r} has an invalid port") from exc
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_loopback(host: str) -> bool:
    """True for hosts only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
