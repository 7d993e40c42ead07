"""One timer for every incident: a delaying work queue keyed by incident.

Why not a kopf daemon per incident: a daemon makes kopf put a finalizer on every incident (a write
per incident, and another to take it off when the incident is deleted) and keeps two asyncio tasks
per open incident for its whole life. With thousands of open incidents that is most of the
operator's writes at start-up and most of its memory. This queue keeps one entry (a due time) per
incident and one task in all; the work itself runs with bounded concurrency.

Semantics, as client-go's delaying work queue:

- ``offer(key, body)``: something changed (a watch event): process the key as soon as a slot is
  free, with ``body`` as the freshest known state (a newer offer replaces it).
- a processing call returns the key's next due time (an epoch second) or ``None``; the queue
  sleeps until the earliest due time of all keys and processes that key then (re-reading it,
  since nothing newer was offered).
- a key is never processed twice at once. A key offered while it is being processed is processed
  again right after, and the due time that processing returned is discarded: it was computed
  from a state older than the offer. So a stale result can never cancel a newer deadline.
- a processing call that raises is retried with a growing delay (1 s .. 60 s), the key's other
  work unaffected; one bad object never stops the others. An exception with a ``due`` attribute
  (an epoch second: the key's own next due time, known before the failure) is retried at that
  time instead when it is earlier.
- ``forget(key)``: the object is gone; drop its entry (a run in progress finishes, its result is
  ignored).

Memory is one small entry per incident that has a due time or pending work, and the heap holds at
most a bounded number of stale entries (it is rebuilt when they outnumber the live ones).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Process = Callable[[Hashable, "dict[str, Any] | None"], Awaitable["float | None"]]

RETRY_DELAYS_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass
class _Entry:
    due: float | None = None  # when to process next (epoch seconds); None = nothing scheduled
    hint: dict[str, Any] | None = None  # freshest body known, from an offer; None = re-read
    running: bool = False
    dirty: bool = False  # offered while running: run again right after
    failures: int = 0
    forgotten: bool = False
    written_version: str | None = None  # resourceVersion of the operator's own last write
    seq: int = field(default=0)  # identifies the live heap item for this entry


class IncidentQueue:
    def __init__(self, process: Process, *, concurrency: int = 16,
                 clock: Callable[[], float] = time.time):
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._process = process
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._counter = itertools.count(1)
        self._changed = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Runs :meth:`run` in a task of its own, once (later calls do nothing)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self.run(), name="incident queue")

    async def stop(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- what handlers call --------------------------------------------------------------------

    def offer(self, key: Hashable, body: dict[str, Any] | None = None) -> None:
        """The object changed: process it now (with ``body`` as its freshest state).

        The echo of the operator's own last write (same resourceVersion as :meth:`wrote` noted)
        is skipped: processing it would compute what the writer already computed.
        """
        entry = self._entries.get(key)
        version = ((body or {}).get("metadata") or {}).get("resourceVersion")
        if entry is not None and version is not None and version == entry.written_version:
            return
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.forgotten = False
        entry.hint = body
        if entry.running:
            entry.dirty = True
            return
        entry.failures = 0
        self._schedule(key, entry, self._clock())

    def wrote(self, key: Hashable, resource_version: str | None) -> None:
        """The processing call for ``key`` wrote the object; its watch event will be an echo."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.written_version = resource_version

    def forget(self, key: Hashable) -> None:
        """The object is gone."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.running:
            entry.forgotten = True
            entry.dirty = False
            entry.hint = None
            return
        del self._entries[key]

    def due(self, key: Hashable) -> float | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.due

    def __len__(self) -> int:
        return len(self._entries)

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Processes keys as they fall due until cancelled (then waits for running calls)."""
        try:
            while not self._closed:
                key, entry = self._pop_due()
                if key is None:
                    timeout = None if not self._heap else max(self._heap[0][0] - self._clock(), 0.0)
                    self._changed.clear()
                    try:
                        await asyncio.wait_for(self._changed.wait(), timeout)
                    except asyncio.TimeoutError:
                        pass
                    continue
                await self._slots.acquire()
                entry.running = True
                hint, entry.hint = entry.hint, None
                task = asyncio.create_task(self._run_one(key, entry, hint), name=f"incident {key}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run_one(self, key: Hashable, entry: _Entry, hint: dict[str, Any] | None) -> None:
        next_due: float | None = None
        failed = False
        try:
            next_due = await self._process(key, hint)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - one object's failure must not stop the others
            failed = True
            entry.failures += 1
            delay = RETRY_DELAYS_SECONDS[min(entry.failures, len(RETRY_DELAYS_SECONDS)) - 1]
            log.warning(f"Processing incident {key} failed ({type(error).__name__}: {error}); "
                        f"retrying in {delay:g}s")
            next_due = self._clock() + delay
            own_due = getattr(error, "due", None)
            if own_due is not None and own_due < next_due:
                next_due = own_due
        finally:
            self._slots.release()
            entry.running = False
        if not failed:
            entry.failures = 0
        if entry.forgotten:
            self._entries.pop(key, None)
            return
        if entry.dirty:
            entry.dirty = False
            # Offered meanwhile: the result above came from an older state. Run again now (an
            # earlier retry time from a failure is kept, as a fresh offer resets failures).
            if failed:
                self._schedule(key, entry, next_due)
            else:
                self._schedule(key, entry, self._clock())
            return
        if next_due is None:
            self._entries.pop(key, None)
            return
        self._schedule(key, entry, next_due)

    # -- internals -------------------------------------------------------------------------------

    def _schedule(self, key: Hashable, entry: _Entry, due: float) -> None:
        entry.due = due
        entry.seq = next(self._counter)
        heapq.heappush(self._heap, (due, entry.seq, key))
        if len(self._heap) > 2 * len(self._entries) + 1024:
            self._compact()
        self._changed.set()

    def _compact(self) -> None:
        self._heap = [(e.due, e.seq, k) for k, e in self._entries.items()
                      if e.due is not None and not e.running]
        heapq.heapify(self._heap)

    def _pop_due(self) -> tuple[Hashable | None, _Entry | None]:
        now = self._clock()
        while self._heap:
            due, seq, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is None or entry.seq != seq or entry.running:
                heapq.heappop(self._heap)  # superseded
                continue
            if due > now:
                return None, None
            heapq.heappop(self._heap)
            entry.due = None
            return key, entry
        return None, None
