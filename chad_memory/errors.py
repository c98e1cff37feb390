"""The library's own exceptions, so callers never have to catch driver errors.

Driver errors are translated once, in `translate_db_error`; the service maps these classes
to HTTP status codes in one table.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError


class ChadMemoryError(Exception):
    """Base class for every error the library raises on purpose."""

    # True when the failed unit of work wrote nothing and running it again may succeed
    # (see chad_memory.stores.transactions.retried).
    retryable: bool = False


class NotFoundError(ChadMemoryError):
    """The id names nothing (or nothing the caller may see)."""


class ForbiddenError(ChadMemoryError):
    """The row exists but belongs to another actor."""


class ConflictError(ChadMemoryError):
    """The write collides with existing data: a duplicate key or a taken id."""


class InvalidInputError(ChadMemoryError, ValueError):
    """The input is malformed in a way the database would reject or silently mangle."""


class EmbeddingDimensionError(InvalidInputError):
    """An embedding's length differs from the schema's vector dimension."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"embedding has {got} dimensions, expected {expected}")
        self.expected = expected
        self.got = got


class UndecodableBodyError(InvalidInputError):
    """A request body that cannot be decoded at all (not the protobuf or JSON it claims to
    be, bad gzip): the service answers 400, as OTLP/HTTP prescribes, not 422."""


class PayloadTooLargeError(InvalidInputError):
    """A body over the size limit once decompressed (the service answers 413)."""


class IdempotencyKeyReusedError(InvalidInputError):
    """The idempotency key was used before with a different request body."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different request body; "
            "use a new key for a new request"
        )
        self.key = key


class IdempotencyInProgressError(ConflictError):
    """A request with the same idempotency key is still being processed."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with Idempotency-Key {key!r} is still in progress; retry shortly"
        )
        self.key = key


class DatabaseUnavailableError(ChadMemoryError):
    """The database cannot be reached; the caller may retry later."""


class TransientDatabaseError(DatabaseUnavailableError):
    """A serialization failure or deadlock outlived the store's retries; nothing was written.

    A subclass of DatabaseUnavailableError because the caller's remedy is the same: try
    again a little later (the service answers 503 with Retry-After).
    """


class DatabaseTimeoutError(DatabaseUnavailableError):
    """A statement ran past `statement_timeout` and was cancelled; nothing was written.

    Not retried by the store: repeating a statement that was too slow adds load exactly
    when the database has least to spare.
    """


class PoolExhaustedError(DatabaseUnavailableError):
    """Every pooled connection stayed busy for `db_pool_timeout` seconds."""


class AuthenticationError(ChadMemoryError):
    """The service refused the API key (HTTP 401): missing, unknown or revoked."""


class ServiceUnreachableError(ChadMemoryError):
    """The client could not reach the service at all (connection refused, DNS, timeout
    while connecting), after its retries; nothing was sent."""

    retryable = True


class EmbeddedServerUnavailableError(ChadMemoryError):
    """Neither DATABASE_URL nor the `embedded` extra is available."""


# SQLSTATE classes we translate; see PostgreSQL's errcodes appendix.
_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"
_CHECK_VIOLATION = "23514"
_NOT_NULL_VIOLATION = "23502"
# Class 22, data exception: numeric out of range, invalid datetime, bad text representation.
_DATA_EXCEPTION_CLASS = "22"


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error wrapped by SQLAlchemy, if there is one."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), exc):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def constraint_of(exc: BaseException) -> str | None:
    """The name of the violated constraint, as asyncpg reports it."""
    orig = getattr(exc, "orig", None)
    for candidate in (getattr(orig, "__cause__", None), orig):
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str):
            return name
    return None


def translate_db_error(exc: DBAPIError, what: str) -> ChadMemoryError | None:
    """Map an integrity or data error to a domain error; None means: not ours to translate."""
    code = sqlstate_of(exc)
    if code is not None and code.startswith(_DATA_EXCEPTION_CLASS):
        # Out-of-range numbers and dates that slipped past validation: the caller's input.
        first_line = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        return InvalidInputError(f"{what}: a value does not fit its column ({first_line})")
    if not isinstance(exc, IntegrityError):
        return None
    constraint = constraint_of(exc) or "a constraint"
    if code == _UNIQUE_VIOLATION:
        return ConflictError(f"{what}: duplicate value violates {constraint}")
    if code == _FOREIGN_KEY_VIOLATION:
        return NotFoundError(f"{what}: referenced row does not exist ({constraint})")
    if code in (_CHECK_VIOLATION, _NOT_NULL_VIOLATION):
        return InvalidInputError(f"{what}: value violates {constraint}")
    return None
