"""bot.tasks.Supervisor: failures are logged and reported, close() cancels and waits."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from bot.tasks import Supervisor


async def test_a_failed_task_is_logged_with_its_name_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor("players")
    crashed: list[BaseException] = []

    async def boom() -> None:
        raise ValueError("broken")

    task = supervisor.spawn(boom(), name="guild-player-42", on_crash=crashed.append)
    await asyncio.wait([task])
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert [type(e) for e in crashed] == [ValueError]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "guild-player-42" in record.getMessage() and record.exc_info is not None
    assert len(supervisor) == 0


async def test_a_task_nobody_references_still_runs_to_the_end() -> None:
    supervisor = Supervisor("owner")
    finished = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    supervisor.spawn(work(), name="work")
    gc.collect()
    await asyncio.wait_for(finished.wait(), 1)


async def test_close_cancels_and_waits_until_every_task_stopped() -> None:
    supervisor = Supervisor("owner")
    cleaned = []

    async def forever(n: int) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself awaits
            cleaned.append(n)

    for n in range(3):
        supervisor.spawn(forever(n), name=f"t{n}")
    await asyncio.sleep(0)
    await supervisor.close()
    assert sorted(cleaned) == [0, 1, 2] and len(supervisor) == 0
    with pytest.raises(RuntimeError, match="closed"):
        supervisor.spawn(forever(9), name="late")


async def test_a_cancelled_task_is_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor("owner")
    crashed: list[BaseException] = []
    task = supervisor.spawn(asyncio.sleep(10), name="sleeper", on_crash=crashed.append)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task])
    await asyncio.sleep(0)
    assert crashed == [] and not [r for r in caplog.records if r.levelno >= logging.WARNING]
