"""Warm Realtime sessions, so a request does not pay for a connection and a session set-up.

Sessions are kept per voice, because a session's voice is fixed once it has spoken; a different speed is one
``session.update`` between responses. One *spare* (connected, set to the bot's default voice at speed 1.0, and
never used) is kept ready: it serves the default voice at once and any other voice after one update, and is
replaced in the background once it has been taken. Sessions are retired before the API's 60-minute limit,
idle ones beyond the spare after a few minutes, broken ones at once; at most ``max_sessions`` are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.i18n import N_
from bot.speech.errors import SpeechError, SpeechRateLimitError
from bot.speech.realtime_session import RealtimeSession

log = logging.getLogger(__name__)

#: The API ends a session after 60 minutes; none is handed out after 55, so a long text ends in time.
MAX_AGE = 55 * 60.0
#: Idle sessions other than the spare are closed after this long unused.
IDLE_TTL = 5 * 60.0
#: How often idle sessions are looked at (and the spare replaced after a failed attempt).
SWEEP_INTERVAL = 30.0
#: A spare that could not be opened, or broke younger than this, is not replaced for ``SWEEP_INTERVAL``: a
#: service that drops every session must not get a connection loop.
SPARE_MIN_LIFE = 60.0

MSG_SATURATED = N_("Too much is being spoken right now. Try again in a moment.")

Connector = Callable[[], Awaitable[RealtimeSession]]


class SessionPool:
    """Hands out configured, idle sessions (:meth:`acquire`) and takes them back (:meth:`release`)."""

    def __init__(
        self,
        connect: Connector,
        *,
        max_sessions: int,
        spare: tuple[str, float] | None,
        setup_timeout: float,
        max_age: float = MAX_AGE,
        idle_ttl: float = IDLE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self.max_sessions = max_sessions
        self._spare_config = spare
        self._setup_timeout = setup_timeout
        self.max_age = max_age
        self.idle_ttl = idle_ttl
        self._clock = clock
        self._idle: list[RealtimeSession] = []  # least recently used first
        self._busy: set[RealtimeSession] = set()
        self._connecting = 0
        self._changed = asyncio.Event()  # replaced (after being set) on every change
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._spare_backoff_until = 0.0
        self.connects = 0  # sessions opened, for tests and logs

    @property
    def open_sessions(self) -> int:
        return len(self._idle) + len(self._busy) + self._connecting

    @property
    def idle_sessions(self) -> int:
        """Sessions set up and waiting for a request (the spare among them)."""
        return len(self._idle)

    def start(self) -> None:
        """Open the spare in the background and start sweeping idle sessions."""
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.create_task(self._sweep(), name="realtime-pool-sweeper")
            self._replace_spare()

    async def acquire(self, voice: str, speed: float) -> RealtimeSession:
        """A session set to ``voice`` and ``speed``, marked busy until :meth:`release` or :meth:`discard`.

        Prefers, in order: an idle session in that voice, the spare, a new connection, a new connection in
        place of the least recently used idle session; when every one of ``max_sessions`` is busy, waits up to
        the set-up timeout for one. Raises the typed SpeechError of a failed connection or update.
        """
        deadline = self._clock() + self._setup_timeout
        while True:
            self._drop_unusable()
            session = self._take_idle(voice, speed)
            if session is None and self.open_sessions >= self.max_sessions and self._idle:
                await self._close(self._idle.pop(0))  # make room: another voice's session goes
            if session is None and self.open_sessions < self.max_sessions:
                session = await self._open()
            if session is not None:
                break
            left = deadline - self._clock()
            if left <= 0:
                raise SpeechRateLimitError(MSG_SATURATED, status=429, retryable=True, code="pool_saturated")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()
        self._busy.add(session)
        try:
            await session.configure(voice=voice, speed=speed, timeout=self._setup_timeout)
        except SpeechError:
            self.release(session)  # refused (an unknown voice), the session is as it was; or broken and closed
            raise
        except BaseException:
            self.discard(session)
            raise
        if self._spare_config is not None and not self._has_spare():
            self._replace_spare()
        return session

    def release(self, session: RealtimeSession) -> None:
        """``session`` is free again: back to the idle list, or closed if it is broken, too old or busy."""
        self._busy.discard(session)
        if session.broken is not None or session.busy or session.age >= self.max_age or self._closed:
            self._close_later(session)
        else:
            self._idle.append(session)
        self._notify()

    def discard(self, session: RealtimeSession) -> None:
        """``session`` is in an unknown state (a timeout mid-response): close it."""
        self._busy.discard(session)
        self._close_later(session)
        self._notify()

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        sessions, self._idle = [*self._idle, *self._busy], []
        self._busy.clear()
        await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)

    # -- internals --

    def _take_idle(self, voice: str, speed: float) -> RealtimeSession | None:
        """The best idle session for ``voice``: one that spoke in it (same speed first), then one that never
        spoke (set as asked first): those can take any voice, so they are kept for the voices nobody else has.
        Most recently used first: the others may age out."""
        for good in (
            lambda s: s.spoken and s.voice == voice and s.speed == speed,
            lambda s: s.spoken and s.voice == voice,
            lambda s: not s.spoken and s.voice == voice and s.speed == speed,
            lambda s: not s.spoken,
        ):
            for session in reversed(self._idle):
                if good(session):
                    self._idle.remove(session)
                    return session
        return None

    def _has_spare(self) -> bool:
        return any(not session.spoken for session in self._idle) or self._connecting > 0

    async def _open(self) -> RealtimeSession:
        self._connecting += 1
        try:
            session = await self._connect()
        finally:
            self._connecting -= 1
            self._notify()
        self.connects += 1
        session.on_idle = self._came_back
        session.on_broken = self._broke
        return session

    def _broke(self, session: RealtimeSession) -> None:
        """An idle session ended (the service expired it, the network dropped it): close it, and have a spare."""
        if session.age < SPARE_MIN_LIFE:
            self._spare_backoff_until = self._clock() + SWEEP_INTERVAL
        if session in self._idle:
            self._idle.remove(session)
            self._close_later(session)
            self._notify()
            if not self._has_spare():
                self._replace_spare()

    def _came_back(self, session: RealtimeSession) -> None:
        """An abandoned response has ended on ``session``: it may serve again."""
        if session in self._busy:
            self.release(session)

    def _replace_spare(self) -> None:
        if self._closed or self._spare_config is None or self.open_sessions >= self.max_sessions:
            return
        if self._clock() < self._spare_backoff_until:
            return
        self._spawn(self._open_spare(*self._spare_config))

    async def _open_spare(self, voice: str, speed: float) -> None:
        try:
            session = await self._open()
        except SpeechError as error:
            log.info("realtime: could not open a spare session (%s); trying again later", type(error).__name__)
            self._spare_backoff_until = self._clock() + SWEEP_INTERVAL
            return
        if self._closed:
            await session.close()
            return
        self._busy.add(session)
        try:
            await session.configure(voice=voice, speed=speed, timeout=self._setup_timeout)
        except SpeechError as error:
            log.info("realtime: could not set up the spare session (%s)", type(error).__name__)
        self.release(session)

    def _drop_unusable(self) -> None:
        for session in [s for s in self._idle if s.broken is not None or s.age >= self.max_age]:
            self._idle.remove(session)
            self._close_later(session)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self._drop_unusable()
            now = self._clock()
            spare_kept = False
            for session in list(self._idle):
                if not session.spoken and not spare_kept:
                    spare_kept = True
                    continue
                if now - session.last_used >= self.idle_ttl:
                    self._idle.remove(session)
                    self._close_later(session)
            if not self._has_spare():
                self._replace_spare()

    def _close_later(self, session: RealtimeSession) -> None:
        self._spawn(self._close(session))

    async def _close(self, session: RealtimeSession) -> None:
        await session.close()
        self._notify()

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()
