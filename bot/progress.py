"""A progress line on a terminal while ``speechbot say`` waits for a long synthesis (4,000 characters take
~17 s offline), so the operator sees it working; nothing at all when stderr is not a terminal (a pipe, a log).

Neither the speech API nor the offline engine says how much of the text is done, so the bar does not claim a
percentage: it moves while audio arrives and says how long it has been and how much audio has come.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TextIO

from bot.audio.formats import AudioFormat
from bot.speech.models import SpeechStream

#: Seconds between redraws.
INTERVAL = 0.2
#: Width of the bar, and of the block moving in it.
WIDTH, BLOCK = 20, 4


class TerminalProgress:
    """``async with TerminalProgress(stream, what):`` draws ``[  ████  ] what: 3.2 s, 41 KB of audio`` on one
    line, redrawn every :data:`INTERVAL` and erased on the way out (the result line then takes its place)."""

    def __init__(self, stream: TextIO, what: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._what = what
        self._clock = clock
        self._received = 0
        self._frame = 0
        self._started = clock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def if_terminal(cls, stream: TextIO, what: str) -> TerminalProgress | None:
        """A progress line on ``stream`` when it is a terminal, else None (scripts and logs get no noise)."""
        return cls(stream, what) if stream.isatty() else None

    def received(self, size: int) -> None:
        self._received += size

    def line(self) -> str:
        """The current line (without the carriage return that redraws it)."""
        position = self._frame % (2 * (WIDTH - BLOCK))
        start = position if position <= WIDTH - BLOCK else 2 * (WIDTH - BLOCK) - position  # back and forth
        bar = " " * start + "█" * BLOCK + " " * (WIDTH - BLOCK - start)
        elapsed = self._clock() - self._started
        return f"[{bar}] {self._what}: {elapsed:.1f} s, {self._received // 1024:,} KB of audio"

    async def __aenter__(self) -> TerminalProgress:
        self._started = self._clock()
        self._draw()
        self._task = asyncio.create_task(self._redraw(), name="progress")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._stream.write("\r\x1b[K")  # erase the line: the result (or the error) is written in its place
        self._stream.flush()

    async def _redraw(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            self._frame += 1
            self._draw()

    def _draw(self) -> None:
        self._stream.write("\r" + self.line() + "\x1b[K")
        self._stream.flush()


class CountedStream:
    """A :class:`SpeechStream` that reports the size of each chunk as it passes (to a progress line)."""

    def __init__(self, inner: SpeechStream, on_chunk: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_chunk = on_chunk

    @property
    def format(self) -> AudioFormat:
        return self._inner.format

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._on_chunk(len(chunk))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
