"""The bot owner's bot-wide controls for a public instance: blocked users, blocked servers, engines switched off.

Stored in the database (``Store.owner_state``) and held in memory, because they are asked on every interaction,
message and speech request. This process's own changes apply at once; another process sharing the database sees
them within ``ttl`` seconds (:meth:`OwnerControls.refresh` re-reads them when they are older, and the callers on
the hot paths call it: the command tree's check, read-aloud, speech admission).

Nothing here knows Discord: callers pass ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.storage import OwnerState, StorageError, Store

log = logging.getLogger(__name__)

#: Seconds another process's block or kill switch can stay unseen here.
DEFAULT_TTL = 30.0

BLOCKED_GUILD = "This bot is not available in this server."
BLOCKED_USER = "You can't use this bot."


class OwnerControls:
    """The blocklists and the kill switch, read through (module docstring)."""

    def __init__(self, store: Store, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.state = OwnerState()
        self._ttl = ttl
        self._clock = clock
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, *, force: bool = False) -> OwnerState:
        """The current state, re-read when older than the ttl (or ``force``). A database that does not answer
        keeps the last known state (logged): a block does not lapse because of an outage."""
        if not force and self._loaded_at is not None and self._clock() - self._loaded_at < self._ttl:
            return self.state
        async with self._lock:
            if not force and self._loaded_at is not None and self._clock() - self._loaded_at < self._ttl:
                return self.state
            try:
                self.state = await self.store.owner_state()
            except StorageError as exc:
                log.warning("could not re-read the owner's blocklists and kill switch; keeping the last: %s", exc)
            self._loaded_at = self._clock()
        return self.state

    # -- questions on the hot paths (after refresh) --

    def user_blocked(self, user_id: int) -> bool:
        return user_id in self.state.blocked_users

    def guild_blocked(self, guild_id: int | None) -> bool:
        return guild_id is not None and guild_id in self.state.blocked_guilds

    def refusal(self, guild_id: int | None, user_id: int) -> str | None:
        """The one line a blocked server or user gets, or None when neither is blocked."""
        if self.guild_blocked(guild_id):
            return BLOCKED_GUILD
        if self.user_blocked(user_id):
            return BLOCKED_USER
        return None

    def disabled_engines(self) -> frozenset[str]:
        return self.state.disabled_engines

    # -- the owner's changes --

    async def set_user_blocked(self, user_id: int, blocked: bool) -> bool:
        """False when nothing changed."""
        changed = await self.store.set_user_blocked(user_id, blocked)
        await self.refresh(force=True)
        return changed

    async def set_guild_blocked(self, guild_id: int, blocked: bool) -> bool:
        changed = await self.store.set_guild_blocked(guild_id, blocked)
        await self.refresh(force=True)
        return changed

    async def set_engine_disabled(self, engine: str, disabled: bool) -> bool:
        changed = await self.store.set_engine_disabled(engine, disabled)
        await self.refresh(force=True)
        return changed
