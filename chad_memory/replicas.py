"""Reads on a streaming replica, with the primary behind it.

`READ_DATABASE_URL` names a hot standby. Dashboard reads (run lists, a run's children,
stats, analytics, memory search) go there, so they stop competing with the agents'
writes; writes, and any read whose caller needs its own write, stay on the primary.

`ReadRouted` wraps the same store twice (one on each database) and sends each async
method call to the replica unless the replica is known to be down. When a call fails
there because the replica is unreachable, it is marked down for `cooldown_s` and the
same call runs on the primary, so the caller sees an answer, not a 503. A replica also
lags a little behind: a row that is not there yet (NotFoundError) is looked up on the
primary before anyone is told it does not exist.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

from chad_memory.errors import DatabaseUnavailableError, NotFoundError, PoolExhaustedError

logger = logging.getLogger(__name__)

S = TypeVar("S")


class ReplicaState:
    """Whether reads may go to the replica now; shared by every store that uses it."""

    def __init__(self, cooldown_s: float = 5.0) -> None:
        self.cooldown_s = cooldown_s
        self._down_until = 0.0
        # Reads the primary answered in the replica's place (outage or lag).
        self.fallbacks = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def mark_down(self, reason: str) -> None:
        if self.available:
            logger.warning(
                "read replica unavailable (%s); reading from the primary for %.0fs",
                reason,
                self.cooldown_s,
            )
        self._down_until = time.monotonic() + self.cooldown_s


class ReadRouted(Generic[S]):
    """`primary`'s interface; async methods run on `replica` first (see module doc)."""

    def __init__(self, primary: S, replica: S, state: ReplicaState) -> None:
        self._primary = primary
        self._replica = replica
        self._state = state

    def __getattr__(self, name: str) -> Any:
        on_primary = getattr(self._primary, name)
        if not inspect.iscoroutinefunction(on_primary):
            return on_primary
        on_replica: Callable[..., Awaitable[Any]] = getattr(self._replica, name)

        async def routed(*args: Any, **kwargs: Any) -> Any:
            if self._state.available:
                try:
                    return await on_replica(*args, **kwargs)
                except (DatabaseUnavailableError, PoolExhaustedError) as exc:
                    self._state.mark_down(type(exc).__name__)
                except NotFoundError:
                    pass  # not replicated yet, perhaps: the primary decides
            self._state.fallbacks += 1
            return await on_primary(*args, **kwargs)

        return routed

    @classmethod
    def of(cls, primary: S, replica: S, state: ReplicaState) -> S:
        """The wrapper, typed as the store it stands for."""
        return cast(S, cls(primary, replica, state))
