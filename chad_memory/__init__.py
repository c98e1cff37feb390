"""chad-memory: run history and vector memory for AI agents, on PostgreSQL + pgvector."""

from chad_memory.database import (
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
    RunCreate,
    RunFilter,
    RunUpdate,
    StepCreate,
)
from chad_memory.stores import PgVectorStore, PostgresStore
from chad_memory.stores.keys import ApiKeyStore

__all__ = [
    "ApiKeyStore",
    "ArtifactCreate",
    "ChadMemoryError",
    "ConflictError",
    "DatabaseUnavailableError",
    "EmbeddingCreate",
    "EmbeddingDimensionError",
    "ForbiddenError",
    "InvalidInputError",
    "LLMCallCreate",
    "NotFoundError",
    "PgVectorStore",
    "PostgresStore",
    "RunCreate",
    "RunFilter",
    "RunUpdate",
    "StepCreate",
    "check_db_connection",
    "close_db_connections",
    "get_db_session",
    "get_engine",
    "get_session_factory",
    "resolve_database_url",
]
