"""The operator-wide incident work queue (services/incident_queue.py), with real asyncio and short
due times; assertions are about what ran and in which order, never about how fast."""

from __future__ import annotations

import asyncio
import time

import pytest

from incident_operator.services import incident_queue as queue_module
from incident_operator.services.incident_queue import IncidentQueue


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _with_queue(process, body, concurrency=4):
    queue = IncidentQueue(process, concurrency=concurrency)
    task = asyncio.create_task(queue.run())
    try:
        return await body(queue)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(condition, limit=10.0):
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def test_offer_processes_with_the_offered_body_then_at_the_returned_due_time_with_a_reread():
    calls: list[tuple[str, object]] = []

    async def process(key, body):
        calls.append((key, body))
        return time.time() + 0.05 if len(calls) == 1 else None

    async def body(queue):
        queue.offer("a", {"v": 1})
        await _until(lambda: len(calls) == 2)
        await asyncio.sleep(0.05)
        return queue

    queue = run(_with_queue(process, body))
    assert calls == [("a", {"v": 1}), ("a", None)]  # the timer pass re-reads (no body)
    assert len(queue) == 0  # nothing due: the entry is gone


def test_earliest_due_runs_first():
    order: list[str] = []
    dues = {"late": 0.15, "early": 0.05, "middle": 0.1}

    async def process(key, body):
        if body is not None:
            return time.time() + dues[key]
        order.append(key)
        return None

    async def body(queue):
        for key in ("late", "early", "middle"):
            queue.offer(key, {})
        await _until(lambda: len(order) == 3)

    run(_with_queue(process, body))
    assert order == ["early", "middle", "late"]


def test_an_offer_while_running_runs_again_and_discards_the_stale_due_time():
    started, release = asyncio.Event(), None
    calls: list[object] = []

    async def process(key, body):
        calls.append(body)
        if len(calls) == 1:
            started.set()
            await release.wait()
            return time.time() + 3600  # computed from the old state: must not stick
        return None  # the newer state has nothing due

    async def body(queue):
        nonlocal release
        release = asyncio.Event()
        queue.offer("a", {"v": 1})
        await started.wait()
        queue.offer("a", {"v": 2})
        queue.offer("a", {"v": 3})  # coalesces with the previous offer: only the newest body runs
        release.set()
        await _until(lambda: len(calls) == 2)
        await asyncio.sleep(0.05)
        return queue

    queue = run(_with_queue(process, body))
    assert calls == [{"v": 1}, {"v": 3}]
    assert queue.due("a") is None and len(queue) == 0


def test_never_processes_one_key_twice_at_once_but_others_in_parallel():
    running: dict[str, int] = {}
    peak_same, peak_all = 0, 0
    done = 0

    async def process(key, body):
        nonlocal peak_same, peak_all, done
        running[key] = running.get(key, 0) + 1
        peak_same = max(peak_same, running[key])
        peak_all = max(peak_all, sum(running.values()))
        await asyncio.sleep(0.02)
        running[key] -= 1
        done += 1
        return None

    async def body(queue):
        for _ in range(3):
            for key in "abcdef":
                queue.offer(key, {})
            await asyncio.sleep(0.005)
        await _until(lambda: done >= 6 and sum(running.values()) == 0 and len(queue) == 0)

    run(_with_queue(process, body, concurrency=3))
    assert peak_same == 1
    assert 1 < peak_all <= 3


def test_a_failure_is_retried_with_backoff_and_does_not_stop_other_keys(monkeypatch):
    monkeypatch.setattr(queue_module, "RETRY_DELAYS_SECONDS", (0.02, 0.04))
    attempts: dict[str, int] = {}

    async def process(key, body):
        attempts[key] = attempts.get(key, 0) + 1
        if key == "bad" and attempts[key] < 3:
            raise RuntimeError("API server said 500")
        return None

    async def body(queue):
        queue.offer("bad", {})
        queue.offer("good", {})
        await _until(lambda: attempts.get("bad") == 3)
        await asyncio.sleep(0.05)

    run(_with_queue(process, body))
    assert attempts == {"bad": 3, "good": 1}


def test_forget_drops_the_due_time_and_ignores_a_running_result():
    calls: list[str] = []
    gate = None

    async def process(key, body):
        calls.append(key)
        if key == "running":
            await gate.wait()
        return time.time() + 0.05

    async def body(queue):
        nonlocal gate
        gate = asyncio.Event()
        queue.offer("waiting", {})
        queue.offer("running", {})
        await _until(lambda: len(calls) == 2)
        queue.forget("waiting")  # due in 50 ms, never runs again
        queue.forget("running")  # its result (a due time) is ignored
        gate.set()
        await asyncio.sleep(0.2)
        return queue

    queue = run(_with_queue(process, body))
    assert sorted(calls) == ["running", "waiting"]
    assert len(queue) == 0


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError):
        IncidentQueue(lambda key, body: None, concurrency=0)


def test_start_runs_one_loop_however_often_it_is_called():
    calls: list[str] = []

    async def process(key, body):
        calls.append(key)
        return None

    async def main():
        queue = IncidentQueue(process)
        for _ in range(5):  # each kopf worker calls start() with its own copy of the memo
            queue.start()
        loops = [t for t in asyncio.all_tasks() if t.get_name() == "incident queue"]
        queue.offer("a", {})
        await _until(lambda: calls == ["a"])
        await queue.stop()
        return len(loops)

    assert run(main()) == 1


def test_the_echo_of_our_own_write_is_not_processed_again_but_a_newer_version_is():
    calls: list[object] = []
    queue_ref = {}

    async def process(key, body):
        calls.append(body["metadata"]["resourceVersion"])
        queue_ref["q"].wrote(key, str(int(body["metadata"]["resourceVersion"]) + 1))  # our write: rv + 1
        return time.time() + 3600

    def version(rv):
        return {"metadata": {"resourceVersion": rv}}

    async def body(queue):
        queue_ref["q"] = queue
        queue.offer("a", version("1"))
        await _until(lambda: calls == ["1"])
        await asyncio.sleep(0.02)
        queue.offer("a", version("2"))  # the echo of the write processing "1" made
        await asyncio.sleep(0.05)
        assert calls == ["1"]
        queue.offer("a", version("5"))  # someone else changed it
        await _until(lambda: calls == ["1", "5"])

    run(_with_queue(process, body))
