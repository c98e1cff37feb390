"""The store library: run history, conversations, vector memory, OTLP spans and scores."""

from chad_memory.stores.datasets import DatasetStore
from chad_memory.stores.experiments import ExperimentStore
from chad_memory.stores.prices import PriceStore
from chad_memory.stores.runs import PostgresStore
from chad_memory.stores.scores import ScoreStore
from chad_memory.stores.threads import ThreadStore
from chad_memory.stores.traces import TraceStore
from chad_memory.stores.vectors import PgVectorStore

__all__ = [
    "DatasetStore",
    "ExperimentStore",
    "PgVectorStore",
    "PostgresStore",
    "PriceStore",
    "ScoreStore",
    "ThreadStore",
    "TraceStore",
]
