"""A small in-memory cache of what is read on every message (settings, preferences, mutes, dictionaries).

Writers invalidate what they changed, so one process never serves its own stale data. Other processes'
writes (several bots on one PostgreSQL) are seen once an entry's time-to-live runs out, which bounds their
staleness. A read that started before an invalidation does not refill the cache with what it read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, NamedTuple


class CacheKey(NamedTuple):
    kind: str
    guild_id: int
    user_id: int = 0


class Cache:
    """Least-recently-used entries that expire ``ttl`` seconds after they were read from the database."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[CacheKey, tuple[float, Any]] = OrderedDict()
        self._generation = 0

    def get(self, key: CacheKey) -> Any | None:
        """The cached value, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def token(self) -> int:
        """Take before reading from the database; pass to :meth:`put`."""
        return self._generation

    def put(self, key: CacheKey, value: Any, token: int) -> None:
        """Cache ``value`` unless something was invalidated since ``token`` was taken (it may be stale)."""
        if token != self._generation or self._ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, *, guild_id: int | None = None, user_id: int | None = None) -> None:
        """Drop every entry of that guild and/or user (both None: everything)."""
        self._generation += 1
        stale = [
            key
            for key in self._entries
            if (guild_id is None or key.guild_id == guild_id) and (user_id is None or key.user_id == user_id)
        ]
        for key in stale:
            del self._entries[key]
