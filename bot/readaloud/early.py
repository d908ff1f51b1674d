"""Synthesis during the moderation hold (the ``early`` hold mode): a message's speech is requested as soon as it
is queued, kept in memory, and handed to the player when the hold ends, so listeners wait for the longer of the
hold and the speech service, not for both one after the other.

:class:`EarlySynthesis` owns one such request from admission (budgets and rates, through the same
:class:`~bot.speech_service.SpeechService` as every request) to the moment the player takes the stream. Until
then :meth:`EarlySynthesis.cancel` stops it: before the speech service answered, the request is abandoned and its
reservation released (nothing counted); after, the stream is closed (the download stops) and what the service
answered stays counted. Nothing is played either way: only the player can play, and it only gets the stream from
:meth:`EarlySynthesis.take`, which the guild's reader calls once the hold is over.

Pure asyncio and plain callables, so it is tested without Discord or a speech service.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.speech.errors import SpeechError
from bot.speech.models import SpeechRequest, SpeechStream

#: Starts a background task that the owner keeps and awaits on close (``Supervisor.spawn``).
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class Waste(StrEnum):
    """Why an early synthesis that had been sent was thrown away."""

    DELETED = "deleted"  # the message was deleted during its hold
    EDITED = "edited"  # edited during its hold: synthesized again with the new text
    CHANGED = "changed"  # its name prefix or backlog speed turned out different when its turn came
    STOPPED = "stopped"  # the bot left voice, the queue was full, or the reader stopped


@dataclass
class EarlyStats:
    """Counts for logs, metrics and the benchmark (one per bot, summed over guilds)."""

    started: int = 0  # early requests admitted and asked of the speech service
    used: int = 0  # handed to the player
    refused: int = 0  # refused (budget, rate) or failed: the playback asks again and reports it
    wasted: Counter[Waste] = field(default_factory=Counter)


class EarlySynthesis:
    """One message's speech, requested during its hold (module docstring).

    ``admit`` reserves budgets and rates (a :class:`SpeechError` if refused) and returns what ``open_stream``
    takes; ``open_stream`` asks the speech service (or the cache) and returns the stream once the first audio is there.
    """

    def __init__(
        self,
        request: SpeechRequest,
        admit: Callable[[], Awaitable[object]],
        open_stream: Callable[[object], Awaitable[SpeechStream]],
        *,
        spawn: Spawn,
        name: str,
        stats: EarlyStats,
    ) -> None:
        self.request = request
        self.sent = False  # admitted and asked of the speech service: the text may have reached it
        self.stats = stats
        self._stream: asyncio.Future[SpeechStream] = asyncio.get_running_loop().create_future()
        self._handed = asyncio.Event()
        self._done = False
        self._task = spawn(self._run(admit, open_stream), name)

    async def _run(
        self, admit: Callable[[], Awaitable[object]], open_stream: Callable[[object], Awaitable[SpeechStream]]
    ) -> None:
        try:
            admitted = await admit()
            self.sent = True
            self.stats.started += 1
            stream = await open_stream(admitted)
        except SpeechError as error:
            self.stats.refused += 1
            self._stream.set_exception(error)
            self._stream.exception()  # retrieved: take() re-raises it, nobody else must log it
            return
        except asyncio.CancelledError:
            self._stream.cancel()
            raise
        self._stream.set_result(stream)
        try:
            await self._handed.wait()  # the stream belongs to the player from now on
        except asyncio.CancelledError:
            await stream.aclose()  # stops the download; what the service answered is already counted
            raise

    async def take(self) -> SpeechStream:
        """The stream, once the first audio is there (the player's opener); a refusal or failure is raised as
        the :class:`SpeechError` it was. If the player stops waiting (a skip), the request is cancelled."""
        try:
            stream = await asyncio.shield(self._stream)
        except asyncio.CancelledError:
            self.cancel()
            raise
        self._handed.set()
        self._done = True
        self.stats.used += 1
        return stream

    def cancel(self, why: Waste = Waste.STOPPED) -> bool:
        """Stop it unless the player already has the stream; True (and counted as waste) when the request had
        been sent. Idempotent."""
        if self._done:
            return False
        self._done = True
        self._task.cancel()
        if self.sent and not (self._stream.done() and not self._stream.cancelled()
                              and self._stream.exception() is not None):
            self.stats.wasted[why] += 1
            return True
        return False
