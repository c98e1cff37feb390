"""The unit of work: one module opens transactions and translates every driver error.

Every way to the database goes through here: `transaction` (an ORM session inside BEGIN
... COMMIT), `driver_transaction` (the pooled asyncpg connection itself inside BEGIN ...
COMMIT, for the hot writes where SQLAlchemy's per-call work costs more than the SQL)
and `read` (a pooled connection in autocommit, for reads: each statement is one round
trip, with no BEGIN and COMMIT around it; a read is always safe to run again). Whatever escapes
either, a SQLAlchemy error, an asyncpg error, a pool timeout or a codec refusing a value,
is turned into a `chad_memory.errors` exception by `translate`, from one SQLSTATE table.

`retried` repeats a whole store method while it fails with an error marked retryable:
serialization failures and deadlocks (PostgreSQL rolled the transaction back) and
connections lost before COMMIT was sent. A connection lost *during* COMMIT is never
retried, because the commit may have happened; the caller gets DatabaseUnavailableError
and decides (an Idempotency-Key makes its retry safe). Nested store calls are retried
once, at the outermost level.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg
from asyncpg.exceptions._base import DataError as ArgumentError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from chad_memory.database import Database, RetryPolicy, SessionFactory
from chad_memory.errors import (
    ChadMemoryError,
    ConflictError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    EventLoopError,
    InvalidInputError,
    NotFoundError,
    PoolExhaustedError,
    TransientDatabaseError,
)

__all__ = [
    "Attempt",
    "RetryPolicy",
    "SessionFactory",
    "driver_of",
    "driver_read",
    "driver_transaction",
    "read",
    "retried",
    "transaction",
    "translate",
    "translated_errors",
]

logger = logging.getLogger(__name__)

# SQLSTATE -> what it means for the caller. Exact codes first, then two-character classes
# (PostgreSQL's errcodes appendix). "retry" means PostgreSQL rolled the transaction back
# and running it again is the documented remedy.
_BY_SQLSTATE: dict[str, str] = {
    "23505": "conflict",  # unique_violation
    "23P01": "conflict",  # exclusion_violation
    "23503": "missing",  # foreign_key_violation
    "23514": "invalid",  # check_violation
    "23502": "invalid",  # not_null_violation
    "40001": "retry",  # serialization_failure
    "40P01": "retry",  # deadlock_detected
    "57014": "timeout",  # query_canceled (statement_timeout)
    "57P01": "unavailable",  # admin_shutdown (pg_terminate_backend, restart)
    "57P02": "unavailable",  # crash_shutdown
    "57P03": "unavailable",  # cannot_connect_now
    "53300": "unavailable",  # too_many_connections
    "54000": "too_large",  # program_limit_exceeded: an index entry over its page's third
}
_BY_SQLSTATE_CLASS: dict[str, str] = {
    "22": "invalid",  # data exception: out of range, invalid datetime or text
    "08": "unavailable",  # connection exception
}

# What a violated constraint means, in the API's words; constraint names stay inside.
_CONSTRAINT_MEANINGS: dict[str, str] = {
    "uq_steps_run_id_step_index": "step_index is already taken in this run",
    "uq_runs_actor_idempotency_key": "the idempotency key is already used",
    "uq_runs_actor_trace_id": "trace_id is already used by another of your runs",
    "uq_api_keys_key_hash": "the key already exists",
    "uq_scores_actor_idempotency_key": "the idempotency key is already used",
    "uq_datasets_actor_name": "you already have a dataset of that name",
    "uq_experiments_actor_name": "you already have an experiment of that name",
    "uq_dataset_items_dataset_id_item_id": "the item was changed at the same time; retry",
    "fk_steps_parent_step_id_steps": "parent_step_id names no step",
    "fk_artifacts_step_id_steps": "step_id names no step",
    "fk_llm_calls_step_id_steps": "step_id names no step",
    "fk_runs_thread_id_threads": "thread_id names no thread",
}


def _driver_error(exc: BaseException) -> BaseException:
    """The asyncpg exception under SQLAlchemy's wrappers (or `exc` itself)."""
    orig = getattr(exc, "orig", None)
    for candidate in (getattr(orig, "__cause__", None), orig):
        if isinstance(
            candidate, asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.InternalClientError
        ):
            found: BaseException = candidate
            return found
    return orig if isinstance(orig, BaseException) else exc


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, bare or wrapped by SQLAlchemy, if there is one."""
    for candidate in (_driver_error(exc), exc):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def constraint_of(exc: BaseException) -> str | None:
    """The name of the violated constraint, as asyncpg reports it."""
    name = getattr(_driver_error(exc), "constraint_name", None)
    return name if isinstance(name, str) else None


# What asyncio and asyncpg say when a loop-bound object (a connection, a pool's queue) is
# used from another event loop or after its loop closed.
_WRONG_LOOP = (
    "attached to a different loop",
    "bound to a different event loop",
    "event loop is closed",
    "non-thread-safe operation invoked on an event loop other than the current one",
)


def _wrong_loop(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, is a wrong-loop or closed-loop error."""
    seen: set[int] = set()
    candidate: BaseException | None = exc
    while candidate is not None and id(candidate) not in seen:
        seen.add(id(candidate))
        if isinstance(candidate, RuntimeError) and any(
            text in str(candidate).lower() for text in _WRONG_LOOP
        ):
            return True
        orig = getattr(candidate, "orig", None)
        candidate = (
            orig
            if isinstance(orig, BaseException)
            else candidate.__cause__ or candidate.__context__
        )
    return False


def _unavailable(what: str, committing: bool) -> DatabaseUnavailableError:
    if committing:
        # The COMMIT may or may not have reached the server: never repeat it blindly.
        return DatabaseUnavailableError(f"{what}: connection lost during commit; outcome unknown")
    error = DatabaseUnavailableError(f"{what}: database unavailable")
    error.retryable = True
    return error


def translate(exc: BaseException, what: str, committing: bool = False) -> BaseException:
    """The library's exception for any error raised while talking to the database.

    Returns `exc` itself for what is not a database error (a bug, a cancellation), so
    the caller re-raises it unchanged. Messages never quote the driver: the driver's text
    (Python reprs, `query argument $2`, constraint names) stays in the exception chain
    and the logs.
    """
    if isinstance(exc, ChadMemoryError):
        return exc
    if _wrong_loop(exc):
        # A programming error, not an outage: running it again fails the same way.
        return EventLoopError(
            f"{what}: a database connection was used outside the event loop that opened it "
            "(an engine shared across event loops: make it with chad_memory.database.create_engine)"
        )
    if isinstance(exc, PoolTimeoutError):
        return PoolExhaustedError(f"{what}: no database connection free")
    if isinstance(exc, OverflowError | struct.error):
        # The binary vector codec packs float4: a component beyond its range.
        return InvalidInputError(f"{what}: a vector component is outside float4's range")
    driver = _driver_error(exc)
    if isinstance(driver, ArgumentError):
        # asyncpg could not encode a parameter: a value the column type cannot take.
        return InvalidInputError(f"{what}: a value does not fit its field")
    code = sqlstate_of(exc)
    meaning = None
    if code is not None:
        meaning = _BY_SQLSTATE.get(code) or _BY_SQLSTATE_CLASS.get(code[:2])
    if meaning == "conflict":
        constraint = constraint_of(exc) or ""
        if constraint.startswith("pk_"):
            return ConflictError(f"{what}: the id is already taken")
        return ConflictError(
            f"{what}: {_CONSTRAINT_MEANINGS.get(constraint, 'conflicts with existing data')}"
        )
    if meaning == "missing":
        reason = _CONSTRAINT_MEANINGS.get(constraint_of(exc) or "", "a referenced row is gone")
        return NotFoundError(f"{what}: {reason}")
    if meaning == "invalid":
        return InvalidInputError(f"{what}: a value is out of range or not allowed for its field")
    if meaning == "too_large":
        return InvalidInputError(f"{what}: the values are too long to be indexed together")
    if meaning == "retry":
        transient = TransientDatabaseError(f"{what}: concurrent transaction conflict ({code})")
        transient.retryable = True
        return transient
    if meaning == "timeout":
        return DatabaseTimeoutError(f"{what}: statement timed out")
    if (
        meaning == "unavailable"
        # "cannot switch to state ...; another operation is in progress": the driver's
        # protocol state after its connection was cut mid-operation.
        or isinstance(driver, asyncpg.InternalClientError | asyncpg.InterfaceError)
        or isinstance(exc, OSError | ConnectionError | OperationalError | InterfaceError)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    ):
        return _unavailable(what, committing)
    if isinstance(driver, asyncpg.PostgresError) or isinstance(exc, DBAPIError):
        # A server error we have no entry for: still the library's, without its text.
        logger.error("%s: untranslated database error %s", what, code or type(driver).__name__)
        return ChadMemoryError(f"{what}: the database refused the operation")
    return exc


class Attempt:
    """Where a unit of work stands; set `committing` once a commit may have been sent."""

    committing = False


_DRIVER_ERRORS = (
    DBAPIError,
    RuntimeError,  # only the wrong-loop kind is translated (see `translate`)
    PoolTimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    ConnectionError,
    OverflowError,
    struct.error,
)


@contextmanager
def translated_errors(what: str) -> Iterator[Attempt]:
    """Translate database errors raised inside the block (see `translate`)."""
    attempt = Attempt()
    try:
        yield attempt
    except _DRIVER_ERRORS as exc:
        translated = translate(exc, what, attempt.committing)
        if translated is exc:
            raise
        raise translated from exc


def _sessions(db: Database | SessionFactory) -> SessionFactory:
    return db.session_factory if isinstance(db, Database) else db


@asynccontextmanager
async def transaction(db: Database | SessionFactory, what: str) -> AsyncIterator[AsyncSession]:
    """A session inside `BEGIN ... COMMIT`; the commit has happened when this block exits."""
    with translated_errors(what) as attempt:
        async with (
            _sessions(db)() as session,
            _discarded_if_wrong_loop(session),
            session.begin(),
        ):
            yield session
            attempt.committing = True  # leaving session.begin() sends COMMIT


@asynccontextmanager
async def driver_transaction(
    db: Database | SessionFactory, what: str
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection between explicit BEGIN and COMMIT.

    Skips SQLAlchemy's Session and cursor; the pool's checkout is kept. One statement
    would be atomic on its own, but if the connection dies while an autocommit statement
    runs nobody can tell whether it committed. With BEGIN/COMMIT a loss before COMMIT is
    known to have written nothing, so `retried` may run it again.
    """
    database = Database.of(db)
    with translated_errors(what) as attempt:
        async with _connection(database) as conn:
            driver = await driver_of(conn)
            tx = driver.transaction()
            await tx.start()
            try:
                yield driver
            except BaseException:
                if not driver.is_closed():
                    with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                        await tx.rollback()
                raise
            attempt.committing = True
            await tx.commit()


@asynccontextmanager
async def read(db: Database | SessionFactory, what: str) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit for a read; errors translated (see `translate`).

    Statements see each their own snapshot (as they would in a READ COMMITTED
    transaction); a lost connection is always retryable, since nothing was written.
    """
    database = Database.of(db)
    with translated_errors(what):
        async with _connection(database, database.reader) as conn:
            yield conn


@asynccontextmanager
async def driver_read(
    db: Database | SessionFactory, what: str
) -> AsyncIterator[asyncpg.Connection]:
    """`read`, on the pooled asyncpg connection itself (statements from `DriverStatement`)."""
    database = Database.of(db)
    with translated_errors(what):
        async with _connection(database, database.reader) as conn:
            yield await driver_of(conn)


async def driver_of(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a pooled one: for a `DriverStatement` inside a unit
    of work that also runs Core statements (`read`), on the same checkout."""
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver


@asynccontextmanager
async def _connection(
    database: Database, engine: AsyncEngine | None = None
) -> AsyncIterator[AsyncConnection]:
    """A pooled connection; a factory bound to one connection (tests) lends that one."""
    if database.session_factory.kw.get("bind") is database.engine:
        async with (engine or database.engine).connect() as conn, _discarded_if_wrong_loop(conn):
            yield conn
        return
    async with database.session_factory() as session, _discarded_if_wrong_loop(session):
        yield await session.connection()


@asynccontextmanager
async def _discarded_if_wrong_loop(holder: AsyncConnection | AsyncSession) -> AsyncIterator[None]:
    """Invalidate the connection a wrong-loop error came from: back in the pool it would
    fail every later checkout with "another operation is in progress"."""
    try:
        yield
    except RuntimeError as exc:
        if _wrong_loop(exc):
            # Closing it needs its own loop; the pool logs that failure and drops it.
            await holder.invalidate()
        raise


class _HasDatabase(Protocol):
    @property
    def retry_policy(self) -> RetryPolicy | None: ...

    @property
    def database(self) -> Database: ...


S = TypeVar("S", bound=_HasDatabase)
P = ParamSpec("P")
T = TypeVar("T")

# True while a retried store method runs: a store method called from another one runs
# once, and the outer call does the retrying (otherwise attempts multiply).
_retrying: ContextVar[bool] = ContextVar("chad_memory_retrying", default=False)


def retried(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run a store method again while it fails with a retryable error, at most N times.

    The whole method is repeated, not one statement: PostgreSQL discarded the failed
    transaction, so every statement of the unit of work must run again. N comes from
    the store's `retry_policy` if set, else its Database's.
    """

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if _retrying.get():
            return await method(self, *args, **kwargs)
        policy = self.retry_policy or self.database.retry
        token = _retrying.set(True)
        try:
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
        finally:
            _retrying.reset(token)

    return wrapper
