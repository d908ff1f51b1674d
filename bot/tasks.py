"""Background work with an owner: every task kept referenced, its failure logged with context and reported to
whoever must react, and all of it cancelled *and awaited* on close.

asyncio keeps only weak references to tasks, logs a failed task's exception only when it is garbage-collected
("Task exception was never retrieved"), and ``task.cancel()`` returns before the task has stopped. Fired and
forgotten, a per-guild loop that crashes leaves its queue accepting work nobody will do; this is the one helper
the bot's services use instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")
#: Called with the exception of a task that failed (not of one that was cancelled).
OnCrash = Callable[[BaseException], None]


class Supervisor:
    """The background tasks of one service (``owner`` names it in logs)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: dict[asyncio.Task[Any], OnCrash | None] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, _T], *, name: str, on_crash: OnCrash | None = None
              ) -> asyncio.Task[_T]:
        """Run ``coroutine`` in the background; ``on_crash`` hears of its failure after it is logged."""
        if self._closed:
            coroutine.close()
            raise RuntimeError(f"{self.owner} is closed: {name} was not started")
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks[task] = on_crash
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        on_crash = self._tasks.pop(task, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        log.error("%s: background task %s failed", self.owner, task.get_name(), exc_info=error)
        if on_crash is not None:
            try:
                on_crash(error)
            except Exception:
                log.exception("%s: reacting to the failure of %s failed too", self.owner, task.get_name())

    async def close(self, timeout: float = 10.0) -> None:
        """Cancel every task and wait until each has stopped (a task still running after ``timeout`` is named
        in the log). Idempotent; nothing can be spawned afterwards."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            log.warning("%s: background task %s did not stop within %.0f s", self.owner, task.get_name(), timeout)
