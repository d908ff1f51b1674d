"""Usage counting for read-aloud, summed in memory and written every few seconds.

A busy server sends several speech requests a second; one database write each would queue up behind SQLite's
single writer (measured: writes fell behind at ~150/s and their backlog grew without bound). Summing per server,
user and day and writing every ``interval`` seconds keeps the writes to one per active user per interval. The
cost: budgets see read-aloud usage up to ``interval`` seconds late.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date

from bot.policy import utc_today
from bot.storage import Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0


class UsageBatcher:
    """``add`` counts one request now; a background task writes the sums (``close`` writes what is left)."""

    def __init__(
        self, store: Store, *, interval: float = DEFAULT_INTERVAL, today: Callable[[], date] = utc_today
    ) -> None:
        self._store = store
        self._interval = interval
        self._today = today
        self._pending: defaultdict[tuple[int, int, date, bool], list[int]] = defaultdict(lambda: [0, 0])
        self._task: asyncio.Task[None] | None = None

    def add(self, guild_id: int, user_id: int, characters: int, *, fallback: bool = False) -> None:
        """Count one request; ``fallback``: said by the fallback engine (shown in /usage, not budgeted)."""
        counts = self._pending[(guild_id, user_id, self._today(), fallback)]
        counts[0] += characters
        counts[1] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="read-aloud-usage")

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
        for (guild_id, user_id, day, fallback), (characters, requests) in pending.items():
            try:
                await self._store.add_usage(guild_id, user_id, characters, day, requests=requests, fallback=fallback)
            except Exception:
                log.warning("could not record read-aloud usage (guild=%s)", guild_id, exc_info=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self._interval)
            await self.flush()
