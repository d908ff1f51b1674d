"""One lock per key (per guild), that exists only while someone holds or waits for it.

A plain ``dict[int, asyncio.Lock]`` filled with ``setdefault`` grows by one lock for every guild the bot ever
touched; deleting an entry while another task waits on it would let a newcomer take a second lock for the same
key. Counting holders and waiters makes both problems go away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

_K = TypeVar("_K", bound=Hashable)


class KeyedLock(Generic[_K]):
    def __init__(self) -> None:
        self._locks: dict[_K, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        """Keys with a holder or a waiter."""
        return len(self._locks)

    def locked(self, key: _K) -> bool:
        entry = self._locks.get(key)
        return entry is not None and entry[0].locked()

    @asynccontextmanager
    async def hold(self, key: _K) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock_now, users_now = self._locks[key]
            if users_now == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock_now, users_now - 1)

    async def wait_idle(self) -> None:
        """Until every lock held or awaited now has been released once (shutdown: let work in flight finish)."""
        for lock, _ in list(self._locks.values()):
            async with lock:
                pass
