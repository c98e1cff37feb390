"""The store library: run history and vector memory."""

from chad_memory.stores.runs import PostgresStore
from chad_memory.stores.vectors import PgVectorStore

__all__ = ["PgVectorStore", "PostgresStore"]
