"""Sleeping in daemons until a due time, a wake-up from a handler, or the daemon's stop."""

from __future__ import annotations

import asyncio
from typing import Any


async def sleep_until_woken(wakeup: asyncio.Event, stopped: Any, timeout: float | None) -> None:
    """Returns when ``timeout`` elapses, ``wakeup`` is set, or kopf stops the daemon."""
    # kopf's stopped.wait() returns an awaitable flag promise, not a coroutine.
    waiters = {asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stopped.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
