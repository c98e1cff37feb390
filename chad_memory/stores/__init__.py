"""The store library: run history, conversations, vector memory and OTLP spans."""

from chad_memory.stores.prices import PriceStore
from chad_memory.stores.runs import PostgresStore
from chad_memory.stores.search import SearchStore
from chad_memory.stores.threads import ThreadStore
from chad_memory.stores.traces import TraceStore
from chad_memory.stores.vectors import PgVectorStore

__all__ = [
    "PgVectorStore",
    "PostgresStore",
    "PriceStore",
    "SearchStore",
    "ThreadStore",
    "TraceStore",
]
