"""One unit of work per store call, with driver errors translated on the way out.

`transaction` runs one attempt and says, on the typed error it raises, whether trying
again is safe (`retryable`). `retried` wraps a store method and repeats the whole method
a bounded number of times when it is: serialization failures and deadlocks (PostgreSQL
rolled the transaction back) and connections lost before COMMIT was sent. A connection
lost *during* COMMIT is never retried, because the commit may have happened; the caller
gets DatabaseUnavailableError and decides (an Idempotency-Key makes its retry safe).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.errors import (
    ChadMemoryError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    PoolExhaustedError,
    TransientDatabaseError,
    sqlstate_of,
    translate_db_error,
)
from chad_memory.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SessionFactory = async_sessionmaker[AsyncSession]

# PostgreSQL rolled the whole transaction back; running it again is the documented remedy.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
# query_canceled: statement_timeout (or a cancel request) stopped the statement.
TIMEOUT_SQLSTATES = frozenset({"57014"})
# The server went away or refuses connections: admin/crash shutdown, cannot connect now,
# too many connections; class 08 is "connection exception".
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _is_unavailable(exc: DBAPIError, code: str | None) -> bool:
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    return code is not None and (code in UNAVAILABLE_SQLSTATES or code.startswith("08"))


def _unavailable(what: str, committing: bool) -> DatabaseUnavailableError:
    if committing:
        # The COMMIT may or may not have reached the server: never repeat it blindly.
        return DatabaseUnavailableError(f"{what}: connection lost during commit; outcome unknown")
    error = DatabaseUnavailableError(f"{what}: database unavailable")
    error.retryable = True
    return error


def _translate(exc: DBAPIError, what: str, committing: bool) -> BaseException:
    translated = translate_db_error(exc, what)
    if translated is not None:
        return translated
    code = sqlstate_of(exc)
    if code in RETRYABLE_SQLSTATES:
        transient = TransientDatabaseError(f"{what}: concurrent transaction conflict ({code})")
        transient.retryable = True
        return transient
    if code in TIMEOUT_SQLSTATES:
        return DatabaseTimeoutError(f"{what}: statement timed out")
    if _is_unavailable(exc, code):
        return _unavailable(what, committing)
    return exc


class Attempt:
    """Where a unit of work stands; set `committing` once a commit may have been sent."""

    committing = False


@contextmanager
def translated_errors(what: str) -> Iterator[Attempt]:
    """Turn driver and pool errors raised inside the block into the library's typed errors.

    Integrity errors become ConflictError / NotFoundError / InvalidInputError, lost
    connections DatabaseUnavailableError (retryable only before anything may have been
    committed), serialization failures and deadlocks TransientDatabaseError, statement
    timeouts DatabaseTimeoutError and an exhausted pool PoolExhaustedError; anything else
    propagates unchanged.
    """
    attempt = Attempt()
    try:
        yield attempt
    except DBAPIError as exc:
        translated = _translate(exc, what, attempt.committing)
        if translated is exc:
            raise
        raise translated from exc
    except PoolTimeoutError as exc:
        raise PoolExhaustedError(f"{what}: no database connection free") from exc
    except (OSError, ConnectionError, asyncpg.InterfaceError) as exc:
        raise _unavailable(what, attempt.committing) from exc


@asynccontextmanager
async def transaction(factory: SessionFactory, what: str) -> AsyncIterator[AsyncSession]:
    """A session inside `BEGIN ... COMMIT`; the commit has happened when this block exits.

    Errors are translated by `translated_errors`.
    """
    with translated_errors(what) as attempt:
        async with factory() as session, session.begin():
            yield session
            attempt.committing = True  # leaving session.begin() sends COMMIT


@dataclass(frozen=True)
class RetryPolicy:
    """How often a retryable failure is tried again, and how long to wait in between."""

    attempts: int = 3
    backoff_seconds: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RetryPolicy:
        settings = settings or get_settings()
        return cls(settings.db_retry_attempts, settings.db_retry_backoff_ms / 1000)

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so colliding writers do not collide again."""
        return random.uniform(0, self.backoff_seconds * 2 ** (attempt - 1))


S = TypeVar("S")
P = ParamSpec("P")
T = TypeVar("T")


def retried(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run a store method again while it fails with a retryable error, at most N times.

    The whole method is repeated, not one statement: PostgreSQL discarded the failed
    transaction, so every statement of the unit of work must run again. The instance's
    `retry_policy` (if it has one) sets N; after the last attempt the typed error escapes.
    """

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        policy: RetryPolicy = getattr(self, "retry_policy", None) or RetryPolicy.from_settings()
        attempt = 1
        while True:
            try:
                return await method(self, *args, **kwargs)
            except ChadMemoryError as exc:
                if not exc.retryable or attempt >= policy.attempts:
                    raise
                logger.warning(
                    "%s failed (attempt %d of %d), retrying: %s",
                    method.__name__,
                    attempt,
                    policy.attempts,
                    exc,
                )
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1

    return wrapper
