"""chad-memory: run history and vector memory for AI agents, on PostgreSQL + pgvector."""

from chad_memory.database import (
    Database,
    RetryPolicy,
    check_db_connection,
    close_db_connections,
    get_db_session,
    get_engine,
    get_session_factory,
    resolve_database_url,
)
from chad_memory.errors import (
    ChadMemoryError,
    ConflictError,
    DatabaseUnavailableError,
    EmbeddingDimensionError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from chad_memory.schemas import (
    ArtifactCreate,
    EmbeddingCreate,
    LLMCallCreate,
    MessageCreate,
    Page,
    RunCreate,
    RunFilter,
    RunUpdate,
    StepCreate,
    ThreadCreate,
    ThreadUpdate,
)
from chad_memory.stores import PgVectorStore, PostgresStore, ThreadStore
from chad_memory.stores.keys import ApiKeyStore

__all__ = [
    "ApiKeyStore",
    "ArtifactCreate",
    "ChadMemoryError",
    "ConflictError",
    "Database",
    "DatabaseUnavailableError",
    "EmbeddingCreate",
    "EmbeddingDimensionError",
    "ForbiddenError",
    "InvalidInputError",
    "LLMCallCreate",
    "MessageCreate",
    "NotFoundError",
    "Page",
    "PgVectorStore",
    "PostgresStore",
    "RetryPolicy",
    "RunCreate",
    "RunFilter",
    "RunUpdate",
    "StepCreate",
    "ThreadCreate",
    "ThreadStore",
    "ThreadUpdate",
    "check_db_connection",
    "close_db_connections",
    "get_db_session",
    "get_engine",
    "get_session_factory",
    "resolve_database_url",
]
