"""Time-to-live for ChadMemoryStore's items: the per-actor sweep and its background
sweeper (a mixin of the store), and the all-actors sweep for operators' jobs.

Separate from the store class because expiry runs on its own clock, beside the reads and
writes rather than inside them; reads already skip expired items, swept or not.
"""

from __future__ import annotations

import asyncio
import logging
import math

from langgraph.store.base import TTLConfig

from chad_memory.errors import InvalidInputError
from chad_memory.integrations.langgraph.driver import _write
from chad_memory.integrations.langgraph.statements import SWEEP_SQL
from chad_memory.stores.transactions import SessionFactory

logger = logging.getLogger(__name__)


class _TTLSweeper:
    """ChadMemoryStore's TTL methods; the store's `__init__` sets these attributes."""

    actor: str
    ttl_config: TTLConfig | None
    _sessions: SessionFactory
    _sweeper: asyncio.Task[None] | None
    _stop_sweeping: asyncio.Event

    async def sweep_ttl(self) -> int:
        """Delete this actor's expired items and their vectors; returns how many items."""
        rows = await _write(
            self._sessions,
            "store sweep_ttl",
            SWEEP_SQL.format(actor="AND actor = $1"),
            self.actor,
        )
        return int(rows[0][0])

    async def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Sweep every `sweep_interval_minutes` (else the TTL config's, else 5) until stopped.

        A failed sweep is logged and the sweeper goes on; returns the sweeper's task.
        """
        if self._sweeper is not None and not self._sweeper.done():
            return self._sweeper
        interval = float(
            sweep_interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        )
        if not math.isfinite(interval) or interval <= 0:
            raise InvalidInputError("sweep_interval_minutes must be a positive number")
        self._stop_sweeping = asyncio.Event()
        stop = self._stop_sweeping

        async def sweep_forever() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval * 60)
                    return
                except TimeoutError:
                    pass
                try:
                    swept = await self.sweep_ttl()
                    if swept:
                        logger.info("store swept %d expired items", swept)
                except Exception:
                    logger.exception("store TTL sweep failed; trying again next interval")

        self._sweeper = asyncio.create_task(sweep_forever(), name="chad-memory-ttl-sweeper")
        return self._sweeper

    async def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; True once it has finished (within `timeout` seconds)."""
        task = self._sweeper
        if task is None or task.done():
            return True
        self._stop_sweeping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout)
        except TimeoutError:
            return False
        return True


async def sweep_expired_items(session_factory: SessionFactory) -> int:
    """Delete every actor's expired store items and their vectors (for operators' jobs)."""
    rows = await _write(session_factory, "sweep_expired_items", SWEEP_SQL.format(actor=""))
    return int(rows[0][0])
