"""Concurrent `abatch` calls on one event loop, run together as one batch per loop turn.

LangGraph programs often fire many single-op calls at once (`asyncio.gather` of `aget`s
and `aput`s). Run one by one, each takes a pooled connection and a few round trips, and
thousands of them queue for the pool until they time out. Merged, the gets of one loop
turn are one statement, the puts one more, and identical searches or listings run once.
LangGraph's own stores batch the same way, but on the one loop they were created on;
this works on whichever loop calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from langgraph.store.base import Op, Result

Batch = Callable[[list[Op]], Awaitable[list[Result]]]
Call = tuple[list[Op], "asyncio.Future[list[Result]]"]


class MergedCalls:
    """Calls `run` once per loop turn with every op the calls of that turn sent."""

    def __init__(self, run: Batch) -> None:
        self._run = run
        self._pending: dict[
            asyncio.AbstractEventLoop, list[tuple[list[Op], asyncio.Future[list[Result]]]]
        ] = {}

    async def __call__(self, ops: list[Op]) -> list[Result]:
        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            # Runs after the current turn: every call made in this turn joins the batch.
            loop.call_soon(self._flush, loop)
        future: asyncio.Future[list[Result]] = loop.create_future()
        pending.append((ops, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        calls = self._pending.pop(loop, [])
        if calls:
            loop.create_task(self._run_merged(calls), name="chad-memory-store-batch")

    async def _run_merged(self, calls: list[tuple[list[Op], asyncio.Future[list[Result]]]]) -> None:
        try:
            merged = [op for ops, _ in calls for op in ops]
            try:
                results = await self._run(merged)
            except Exception as exc:
                if len(calls) == 1:
                    _settle(calls[0][1], exc)
                    return
                # One caller's bad op must not fail the others: each call on its own.
                # Nothing was written (the puts are the batch's last statement).
                for ops, future in calls:
                    try:
                        _settle(future, await self._run(ops))
                    except Exception as own:
                        _settle(future, own)
                return
            start = 0
            for ops, future in calls:
                _settle(future, results[start : start + len(ops)])
                start += len(ops)
        finally:
            for _, future in calls:
                if not future.done():  # the batch itself was cancelled
                    future.cancel()


def _settle(future: asyncio.Future[list[Result]], outcome: list[Result] | Exception) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
