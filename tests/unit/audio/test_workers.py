"""DeadlinePool runs the most urgent job first, hands back results and errors, and drops cancelled jobs."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from bot.audio.workers import DeadlinePool


async def occupy(pool: DeadlinePool) -> tuple[asyncio.Task[None], threading.Event]:
    """Keep a one-thread pool's worker busy until the returned event is set: jobs submitted meanwhile queue."""
    gate, started = threading.Event(), threading.Event()

    def blocker() -> None:
        started.set()
        gate.wait(60)  # a bound only for a broken test: the test always opens the gate

    task = asyncio.create_task(pool.run(0.0, blocker))
    assert await asyncio.to_thread(started.wait, 60), "the pool's worker never started"
    return task, gate


async def test_queued_jobs_run_earliest_deadline_first() -> None:
    pool = DeadlinePool(1)
    order: list[str] = []
    first, gate = await occupy(pool)
    jobs = [asyncio.create_task(pool.run(deadline, order.append, name)) for deadline, name in
            [(30.0, "late"), (10.0, "soon"), (20.0, "later"), (10.0, "soon, queued second")]]
    await asyncio.sleep(0)  # one turn of the loop: each task runs up to its queued job
    gate.set()
    await asyncio.gather(first, *jobs)
    assert order == ["soon", "soon, queued second", "later", "late"]


async def test_results_and_errors_reach_the_caller() -> None:
    pool = DeadlinePool(2)
    assert await pool.run(0.0, sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await pool.run(0.0, lambda: 1 / 0)


async def test_a_cancelled_job_that_has_not_started_never_runs() -> None:
    pool = DeadlinePool(1)
    ran: list[str] = []
    first, gate = await occupy(pool)
    dropped = asyncio.create_task(pool.run(1.0, ran.append, "dropped"))
    kept = asyncio.create_task(pool.run(2.0, ran.append, "kept"))
    await asyncio.sleep(0)  # one turn of the loop: both jobs are queued
    dropped.cancel()
    # the cancellation takes effect when the task handles it; the gate opens only then (opening it at once
    # raced the worker thread against the event loop, and the worker sometimes won)
    with contextlib.suppress(asyncio.CancelledError):
        await dropped
    gate.set()
    await asyncio.gather(first, kept)
    assert dropped.cancelled()
    assert ran == ["kept"]


async def test_it_uses_at_most_its_number_of_threads() -> None:
    pool = DeadlinePool(2, name="pool-under-test")
    await asyncio.gather(*(pool.run(0.0, threading.current_thread) for _ in range(20)))
    assert sum(t.name == "pool-under-test" for t in threading.enumerate()) == 2
