"""The render executor: tenant templates are rendered here, off the event loop.

Rendering a template is CPU work bounded by the engine's limits (domain/common/sandbox.py: at most
``max_seconds`` and ``max_operations`` per render), but even a bounded render must not run on the
event loop, where it would delay every other namespace's rules and incidents and the health
endpoint. The executor is a small thread pool of its own (``workers`` threads, separate from the
Kubernetes and notification pools), with at most ``queue`` renders waiting for a thread; callers
beyond that wait on the event loop without holding anything.

Whatever calls the domain's rendering functions (``parse_rule`` and ``plan_evaluation`` of a
DetectionRule, ``render_drafts`` of an incident) goes through :meth:`RenderExecutor.run`.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

DEFAULT_WORKERS = 2
DEFAULT_QUEUE = 64


class RenderExecutor:
    """A bounded thread pool for template rendering, owned by the operator's context."""

    def __init__(self, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE) -> None:
        self.workers = max(int(workers), 1)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="render")
        self._slots = asyncio.Semaphore(max(int(queue), self.workers))

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on a render thread; its result or its exception."""
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def run_rendering(executor: RenderExecutor | None, function: Callable[..., T], *args: Any,
                        **kwargs: Any) -> T:
    """On ``executor`` when there is one; inline otherwise (unit tests that build a service alone)."""
    if executor is None:
        return function(*args, **kwargs)
    return await executor.run(function, *args, **kwargs)
