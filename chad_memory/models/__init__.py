"""ORM models. The schema itself is owned by Alembic; these must agree with it.

`tests/test_migrations.py` compares them with the migrated database on every run, so a
change here without a revision (or the other way round) fails CI.

The models live in modules by table family (`base` holds the declarative base and the
shared column helpers; `runs`, `llm_calls`, `memory`, `threads`, `keys`, `scores`,
`datasets`, `otlp`). Importing this
package registers every table on `Base.metadata`, Alembic's target metadata, and
re-exports every model, so `from chad_memory.models import Run` is the way to import one.
"""

from chad_memory.models.base import NAMING_CONVENTION, Base
from chad_memory.models.datasets import Dataset, DatasetItem, Experiment
from chad_memory.models.keys import ApiKey, DashboardSignOut
from chad_memory.models.llm_calls import (
    COST,
    COST_SOURCES,
    PRICE,
    LLMCall,
    LLMUsageHourly,
    LLMUsageRun,
    ModelPrice,
)
from chad_memory.models.memory import EMBEDDING_DIM, Embedding, MemoryRead, StoreItem
from chad_memory.models.otlp import PendingSpanContent
from chad_memory.models.runs import Artifact, Run, Step
from chad_memory.models.scores import Score, ScoreConfig
from chad_memory.models.threads import Message, Thread

__all__ = [
    "COST",
    "COST_SOURCES",
    "EMBEDDING_DIM",
    "NAMING_CONVENTION",
    "PRICE",
    "ApiKey",
    "Artifact",
    "Base",
    "DashboardSignOut",
    "Dataset",
    "DatasetItem",
    "Embedding",
    "Experiment",
    "LLMCall",
    "LLMUsageHourly",
    "LLMUsageRun",
    "MemoryRead",
    "Message",
    "ModelPrice",
    "PendingSpanContent",
    "Run",
    "Score",
    "ScoreConfig",
    "Step",
    "StoreItem",
    "Thread",
]
