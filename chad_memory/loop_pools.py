"""A connection pool per event loop, behind one engine: the library works from any loop.

An asyncpg connection belongs to the event loop that opened it, and so does the queue of
SQLAlchemy's async pool. One pool shared by two `asyncio.run` calls, or by two threads
each running a loop, hands the second loop a connection it cannot use ("attached to a
different loop"). `LoopPool` is the pool `create_engine` gives every engine: it keeps a
separate `AsyncAdaptedQueuePool` for each running loop, created on that loop's first
checkout with the engine's settings and listeners, and closes that pool's connections
while the loop shuts down (`asyncio.run` and `asyncio.Runner` close async generators
before closing the loop; a hook rides on that). The size settings apply per loop.

A loop closed without that step (a hand-made loop's `close()`) cannot close its
connections any more: its pool is dropped on the next checkout from any loop and the
server ends the sessions when their sockets are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

logger = logging.getLogger(__name__)


class _LoopEntry:
    """One loop's pool, and the async generator whose closing disposes of it."""

    __slots__ = ("pool", "watcher")

    def __init__(self, pool: AsyncAdaptedQueuePool) -> None:
        self.pool = pool
        self.watcher: AsyncGenerator[None, None] | None = None


class LoopPool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool`'s settings, one pool of them per running event loop."""

    def __init__(self, creator: Any, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._settings = kw
        self._loops: dict[asyncio.AbstractEventLoop, _LoopEntry] = {}
        self._loops_lock = threading.Lock()

    def for_loop(self) -> AsyncAdaptedQueuePool:
        """The running loop's pool, created on its first checkout."""
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is not None:
            return entry.pool
        with self._loops_lock:
            entry = self._loops.get(loop)
            if entry is not None:
                return entry.pool
            for closed in [other for other in self._loops if other.is_closed()]:
                # Closed without shutting down its async generators: nothing can run on
                # it to close these connections any more.
                del self._loops[closed]
            settings = dict(self._settings, _dispatch=self.dispatch, dialect=self._dialect)
            entry = _LoopEntry(AsyncAdaptedQueuePool(self._creator, **settings))
            self._loops[loop] = entry
        entry.watcher = self._dispose_at_shutdown(loop, entry)
        # Run to its `yield` now, on this loop's thread: the loop's first-iteration hook
        # registers it, and `shutdown_asyncgens()` will close it.
        step: Any = entry.watcher.asend(None)
        with contextlib.suppress(StopIteration):
            step.send(None)
        return entry.pool

    async def _dispose_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, entry: _LoopEntry
    ) -> AsyncGenerator[None, None]:
        """Suspended until the loop's `shutdown_asyncgens()` closes it; then the loop's
        idle connections are closed on the loop itself, which still runs."""
        try:
            yield
        finally:
            with self._loops_lock:
                if self._loops.get(loop) is entry:
                    del self._loops[loop]
            await greenlet_spawn(entry.pool.dispose)

    # The pool interface, each call on the running loop's pool ---------------------------

    def _do_get(self) -> ConnectionPoolEntry:
        return self.for_loop()._do_get()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        # Records go back to the pool that made them (it is theirs); only a detached
        # connection's record comes here, on the loop that used it.
        self.for_loop()._do_return_conn(record)

    def _invalidate(
        self,
        connection: PoolProxiedConnection,
        exception: BaseException | None = None,
        _checkin: bool = True,
    ) -> None:
        # A disconnect seen on this loop retires this loop's older connections.
        self.for_loop()._invalidate(connection, exception, _checkin)

    def dispose(self) -> None:
        """Close the idle connections of the running loop's pool now and those of other
        running loops on their own loops; forget every loop's pool."""
        with self._loops_lock:
            entries = list(self._loops.items())
            self._loops.clear()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, entry in entries:
            if loop is current:
                entry.pool.dispose()
            elif not loop.is_closed():
                asyncio.run_coroutine_threadsafe(greenlet_spawn(entry.pool.dispose), loop)

    def recreate(self) -> LoopPool:
        return LoopPool(self._creator, **dict(self._settings, _dispatch=self.dispatch))

    def _pools(self) -> list[AsyncAdaptedQueuePool]:
        with self._loops_lock:
            return [entry.pool for entry in self._loops.values()]

    def status(self) -> str:
        pools = self._pools()
        return f"LoopPool: {len(pools)} loops; " + "; ".join(p.status() for p in pools)

    def checkedin(self) -> int:
        return sum(p.checkedin() for p in self._pools())

    def checkedout(self) -> int:
        return sum(p.checkedout() for p in self._pools())

    def overflow(self) -> int:
        return sum(p.overflow() for p in self._pools())
