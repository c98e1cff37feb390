"""An event loop on a daemon thread, for synchronous callers with no loop of their own.

The LangChain tracer writes a sync program's runs on one, and the LangGraph store runs
its sync methods on one; the engine gives that loop connections of its own (a pool per
event loop, see chad_memory.loop_pools).
"""

from __future__ import annotations

import asyncio
import threading


class LoopThread:
    """A new event loop running forever on a daemon thread named `name`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name=name, daemon=True).start()
