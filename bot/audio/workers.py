"""The threads that decode and encode every stream's audio, most urgent stream first.

With many guilds transcoding at once, the work is finite (about 3 ms of CPU per second of speech) but it arrives
in bursts: a body comes in, and its chunks queue behind everyone else's. Two things matter then:

* few threads: one per core. More threads than cores only add context switches and GIL hand-overs (asyncio's
  default pool has cores + 4; measured 40% more CPU for the same packets with 100 streams, docs/PERFORMANCE.md);
* the right order: first in, first out lets a stream that is about to run dry wait behind a stream that has
  seconds of audio buffered, and the listener hears a gap. Jobs here carry a deadline, the moment their stream
  runs out of packets, and the earliest deadline runs first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_V = TypeVar("_V")


class DeadlinePool:
    """Worker threads (started on first use) that run blocking calls in order of their deadlines."""

    def __init__(self, workers: int | None = None, *, name: str = "audio-worker") -> None:
        self._size = workers or _usable_cores()
        self._name = name
        self._jobs: list[tuple[float, int, _Job[Any]]] = []
        self._order = itertools.count()  # equal deadlines: first come, first served
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []

    async def run(self, deadline: float, call: Callable[..., T], *args: object) -> T:
        """Run ``call(*args)`` on a worker thread, before the jobs whose ``deadline`` (``time.monotonic``) is later.

        Cancelling the caller drops a job that has not started; one that has started runs to its end.
        """
        loop = asyncio.get_running_loop()
        job = _Job(loop, call, args)
        with self._ready:
            heapq.heappush(self._jobs, (deadline, next(self._order), job))
            if len(self._threads) < self._size:
                thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._threads.append(thread)
                thread.start()
            self._ready.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                _, _, job = heapq.heappop(self._jobs)
            # ``future.cancelled()``: a caller's task.cancel() cancels the future it awaits at once, before the task
            # itself runs again to set ``job.cancelled``; reading that flag from this thread is safe under the GIL.
            if not job.cancelled and not job.future.cancelled():
                job.run()


def _usable_cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count where it differs)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 2


class _Job(Generic[T]):
    __slots__ = ("args", "call", "cancelled", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, call: Callable[..., T], args: tuple[object, ...]) -> None:
        self.loop = loop
        self.call = call
        self.args = args
        self.future: asyncio.Future[T] = loop.create_future()
        self.cancelled = False

    def run(self) -> None:
        try:
            result = self.call(*self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which decides
            self._settle(self.future.set_exception, exc)
        else:
            self._settle(self.future.set_result, result)

    def _settle(self, outcome: Callable[[_V], object], value: _V) -> None:
        """``outcome(value)`` on the caller's loop, unless the caller was cancelled meanwhile."""

        def settle() -> None:
            if not self.future.done():
                outcome(value)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass
