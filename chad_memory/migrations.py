"""Running Alembic from Python: for the CLI, `serve`, and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from chad_memory.database import resolve_direct_database_url

# The repository root holds alembic.ini and alembic/; the package is installed editable.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(database_url: str | None = None, *, configure_logging: bool = False) -> Config:
    """An Alembic config pointed at `database_url` (default: the resolver's URL with a
    session of its own, DIRECT_DATABASE_URL when set: a migration is no work for a
    transaction-mode pooler)."""
    if not ALEMBIC_INI.exists():
        raise FileNotFoundError(
            f"{ALEMBIC_INI} not found: chad-memory's migrations ship with the repository; "
            "install it from a checkout (pip install -e .)"
        )
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["database_url"] = database_url or resolve_direct_database_url()
    config.attributes["configure_logging"] = configure_logging
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Migrate to `revision`. Synchronous: env.py runs its own event loop."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
