"""The library's own exceptions, so callers never have to catch driver errors.

Driver errors are translated once, in `chad_memory.stores.transactions.translate`; the
service maps these classes to HTTP status codes in one table.
"""

from __future__ import annotations


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


class DirectConnectionRequiredError(ChadMemoryError):
    """Work that needs a database session of its own (an index build, a calibration, a
    migration) was asked for while the only URL goes through a transaction-mode pooler:
    set DIRECT_DATABASE_URL (see chad_memory.poolers)."""


class EventLoopError(ChadMemoryError, RuntimeError):
    """A connection was used from an event loop other than the one that opened it, or after
    that loop closed: a programming error (an engine shared across loops without the
    library's per-loop pool), never retried and never reported as an outage."""


class AuthenticationError(ChadMemoryError):
    """The service refused the API key (HTTP 401): missing, unknown or revoked."""


class ServiceUnreachableError(ChadMemoryError):
    """The client could not reach the service at all (connection refused, DNS, timeout
    while connecting), after its retries; nothing was sent."""

    retryable = True


class EmbeddedServerUnavailableError(ChadMemoryError):
    """Neither DATABASE_URL nor the `embedded` extra is available."""


class EmbedderUnavailableError(ChadMemoryError):
    """The embedder could not be reached, timed out or asked to slow down (after its
    retries); nothing was written. The service answers 503 with Retry-After."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EmbedderFailedError(ChadMemoryError):
    """The embedder answered with an error, or with something that is not the vectors
    asked for; nothing was written. The service answers 502 naming the embedder's error."""
