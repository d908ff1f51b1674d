"""``kill -USR1``: where each task of a stuck bot waits, through every coroutine it awaits (not only the first,
which is all ``Task.get_stack`` shows)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.cli import _log_task_stacks


async def _inner(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _inner(event)


async def test_the_log_names_every_coroutine_a_task_waits_in(caplog: pytest.LogCaptureFixture) -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event), name="stuck-task")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="bot.cli"):
        _log_task_stacks()
    [line] = [r.getMessage() for r in caplog.records if "stuck-task" in r.getMessage()]
    assert " _outer -> " in line and line.index("_outer") < line.index("_inner") < line.index(" wait")
    event.set()
    await task
