"""Audio on its way, shared: one synthesis (or disk read) per key at a time, read by everyone who asks for it.

A :class:`Flight` keeps the chunks so far; each :class:`FlightStream` replays them from the first and then
follows the live ones, so a second identical request starts at once and costs nothing. Kept apart from the
cache's storage tiers: this is about concurrency (who is reading, when to stop), not about what is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from bot.audio.formats import AudioFormat
from bot.speech.cache.keys import Origin
from bot.speech.errors import SpeechError


class Flight:
    """One synthesis (or disk read) under way: the chunks so far, and whoever is reading them."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.chunks: list[bytes] = []
        self.format: AudioFormat | None = None
        self.origin: Origin | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done = False
        self.error: BaseException | None = None
        self.readers = 0
        self.persist = False  # some reader wants it on disk
        self.task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    def begin(self, audio_format: AudioFormat, origin: Origin) -> None:
        self.format, self.origin = audio_format, origin
        if not self.opened.done():
            self.opened.set_result(None)

    def push(self, chunk: bytes) -> None:
        if chunk:
            self.chunks.append(chunk)
            self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.done, self.error = True, error
        if not self.opened.done():
            if error is None:
                self.opened.cancel()
            else:
                self.opened.set_exception(error)
                self.opened.exception()  # retrieved: whoever awaits it re-raises it, nobody else must log it
        self._wake()

    async def progress(self, seen: int) -> None:
        """Return once there are more than ``seen`` chunks or the flight is over."""
        while len(self.chunks) <= seen and not self.done:
            event = self._progress
            await event.wait()

    def _wake(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()


class FlightStream:
    """One reader of a :class:`Flight`: every chunk from the first, then the live ones, then the outcome."""

    def __init__(self, release: Callable[[Flight], None], flight: Flight) -> None:
        self._release = release
        self._flight = flight
        self._closed = False
        self._iterated = False

    @property
    def format(self) -> AudioFormat:
        assert self._flight.format is not None
        return self._flight.format

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise RuntimeError("a speech stream can only be read once")
        self._iterated = True
        flight, index = self._flight, 0
        try:
            while True:
                if index < len(flight.chunks):
                    index += 1
                    yield flight.chunks[index - 1]
                elif flight.done:
                    if flight.error is not None:
                        raise flight.error
                    return
                else:
                    await flight.progress(index)
        finally:
            self.detach()

    async def aclose(self) -> None:
        self.detach()

    def detach(self) -> None:
        """This reader is done (idempotent): the flight stops when nobody reads it any more."""
        if not self._closed:
            self._closed = True
            self._release(self._flight)


class SynthesisAbandoned(SpeechError):
    """The synthesis stopped because the bot is shutting down."""
