"""Speech usage per server: budgets checked and taken in one step, then settled with what was really spoken.

A check followed later by a write lets concurrent requests overspend: each sees the same room left and all go
through. :class:`UsageLedger` *reserves* what a request may cost under a per-server lock, counting what is
already reserved, and the request *settles* afterwards: counted against the budgets when the speech service
spoke it, shown in ``/usage`` only when a fallback engine did, nothing when the audio came from the cache or the
request failed. Within one process this is exact. Several processes sharing a database each see the others'
usage through the store, read at most ``refresh`` seconds ago.

Totals are read from the store once per server and period and then kept up to date in memory, so a request
rarely waits for the database before it is acknowledged (Discord allows 3 s). Writes go to the store at once, or
(``batched``: read-aloud, several requests a second per server) summed and written every ``interval`` seconds:
one database write per active member per interval instead of one per message (measured: SQLite's single writer
fell behind at ~150 writes/s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from bot.errors import UserFacingError
from bot.locks import KeyedLock
from bot.storage import GuildSettings, Store

log = logging.getLogger(__name__)

#: Seconds a server's totals read from the store are trusted before they are read again (other processes).
REFRESH = 30.0
#: Seconds between batched writes.
BATCH_INTERVAL = 5.0


def utc_today() -> date:
    return datetime.now(UTC).date()


class BudgetObserver(Protocol):
    """What watches budget use across servers (the bot's metrics): no server ids, only totals and refusals."""

    def budget_counted(self, characters: int) -> None: ...

    def budget_refused(self, period: str) -> None: ...


class BudgetExceededError(UserFacingError):
    """A request would take a server past its ``period`` ("daily" or "monthly") character budget."""

    def __init__(self, message: str, period: str) -> None:
        super().__init__(message)
        self.period = period


@dataclass(eq=False)
class Reservation:
    """Characters a request may spend, held until it settles or is released."""

    guild_id: int
    user_id: int
    characters: int
    day: date
    open: bool = field(default=True)


@dataclass
class _Totals:
    """A server's characters counted against budgets today and this month, as this process knows them."""

    day: date
    today: int
    month: int
    read_at: float
    reserved: int = 0


class UsageLedger:
    """Budgets of every server, reserved and settled (module docstring); one per bot."""

    def __init__(
        self,
        store: Store,
        *,
        refresh: float = REFRESH,
        interval: float = BATCH_INTERVAL,
        today: Callable[[], date] = utc_today,
        clock: Callable[[], float] = time.monotonic,
        observer: BudgetObserver | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        self._refresh = refresh
        self._interval = interval
        self._today = today
        self._clock = clock
        self._totals: dict[int, _Totals] = {}
        self._locks: KeyedLock[int] = KeyedLock()  # a lock per server only while a reservation is being taken
        self._pending: defaultdict[tuple[int, int, date, bool], list[int]] = defaultdict(lambda: [0, 0])
        self._writer: asyncio.Task[None] | None = None

    def today(self) -> date:
        return self._today()

    async def reserve(self, guild_id: int, user_id: int, characters: int, guild: GuildSettings) -> Reservation:
        """Take ``characters`` from the server's budgets, or refuse (UserFacingError, nothing taken)."""
        async with self._locks.hold(guild_id):
            totals = await self._current(guild_id, guild)
            try:
                check_budgets(guild, characters, used_today=totals.today + totals.reserved,
                              used_this_month=totals.month + totals.reserved)
            except BudgetExceededError as refusal:
                if self._observer is not None:
                    self._observer.budget_refused(refusal.period)
                raise
            totals.reserved += characters
        return Reservation(guild_id, user_id, characters, totals.day)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation that was not spent (the request failed, was served from the cache, or was
        dropped before it was sent). Idempotent."""
        if not reservation.open:
            return
        reservation.open = False
        totals = self._totals.get(reservation.guild_id)
        if totals is not None and totals.day == reservation.day:
            totals.reserved = max(0, totals.reserved - reservation.characters)

    async def settle(self, reservation: Reservation, *, fallback: bool = False, batched: bool = False) -> None:
        """The request was spoken by the speech service (``fallback``: by a fallback engine instead): count it."""
        self.release(reservation)
        await self.count(reservation.guild_id, reservation.user_id, reservation.characters, fallback=fallback,
                         batched=batched)

    async def count(self, guild_id: int, user_id: int, characters: int, *, fallback: bool = False,
                    batched: bool = False) -> None:
        """Count a synthesis that held no reservation (its audio was expected from the cache)."""
        day = self._today()
        if not fallback and self._observer is not None:
            self._observer.budget_counted(characters)
        if not fallback and (totals := self._totals.get(guild_id)) is not None and totals.day == day:
            totals.today += characters
            totals.month += characters
        if batched:
            counts = self._pending[(guild_id, user_id, day, fallback)]
            counts[0] += characters
            counts[1] += 1
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_batches(), name="usage-writer")
            return
        try:
            await self._store.add_usage(guild_id, user_id, characters, day, fallback=fallback)
        except Exception:  # the speech was delivered; losing its count is the lesser harm
            log.warning("could not record speech usage (guild=%s)", guild_id, exc_info=True)

    async def flush(self) -> None:
        """Write the batched counts now."""
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
        for (guild_id, user_id, day, fallback), (characters, requests) in pending.items():
            try:
                await self._store.add_usage(guild_id, user_id, characters, day, requests=requests, fallback=fallback)
            except Exception:
                log.warning("could not record speech usage (guild=%s)", guild_id, exc_info=True)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        await self.flush()

    async def _write_batches(self) -> None:
        while self._pending:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def _current(self, guild_id: int, guild: GuildSettings) -> _Totals:
        """The server's totals, read from the store when they are unknown, stale or of another day."""
        day, now = self._today(), self._clock()
        totals = self._totals.get(guild_id)
        if totals is not None and totals.day == day and now - totals.read_at < self._refresh:
            return totals
        today = month = 0
        if guild.daily_char_budget is not None:
            today = (await self._store.usage_since(guild_id, day)).characters
        if guild.monthly_char_budget is not None:
            month = (await self._store.usage_since(guild_id, day.replace(day=1))).characters
        unwritten = sum(c for (g, _, d, fb), (c, _) in self._pending.items() if g == guild_id and d == day and not fb)
        reserved = totals.reserved if totals is not None and totals.day == day else 0
        totals = self._totals[guild_id] = _Totals(day, today + unwritten, month + unwritten, now, reserved)
        return totals

    def forget_guild(self, guild_id: int) -> None:
        """The bot left the server: drop its cached totals (read again from the store if it comes back), unless a
        request is still reserved against them."""
        totals = self._totals.get(guild_id)
        if totals is not None and totals.reserved == 0:
            del self._totals[guild_id]

    def __len__(self) -> int:
        """Servers whose totals are cached."""
        return len(self._totals)


def check_budgets(guild: GuildSettings, characters: int, *, used_today: int, used_this_month: int) -> None:
    """Refuse what would take the server past its daily or monthly character budget."""
    for budget, used, period, resets in (
        (guild.daily_char_budget, used_today, "daily", "at 00:00 UTC"),
        (guild.monthly_char_budget, used_this_month, "monthly", "on the 1st (UTC)"),
    ):
        if budget is None or used + characters <= budget:
            continue
        if used >= budget:
            raise BudgetExceededError(
                f"This server has used its {period} speech budget ({used:,} of {budget:,} characters). "
                f"It resets {resets}.",
                period,
            )
        raise BudgetExceededError(
            f"That is {characters:,} characters, but only {budget - used:,} are left in this server's "
            f"{period} speech budget. Try something shorter, or wait until it resets {resets}.",
            period,
        )
