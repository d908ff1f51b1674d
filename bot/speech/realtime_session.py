"""One Realtime API session: a WebSocket opened with aiohttp over the bot's shared ``ClientSession``.

Why aiohttp and not the ``openai`` SDK's realtime client: aiohttp is already how the bot talks HTTP, so the
WebSocket shares its connection pool and TLS context (``SSL_CERT_FILE`` honoured, as for every other connection
the bot makes) and adds no dependency; the SDK's client would bring httpx, pydantic and ``websockets`` into the
bot process and turn every 100 ms audio delta into a pydantic model. What aiohttp does not give: the body of a
refused upgrade (it raises with the status and headers only), so a 401 on the upgrade is known by its status.

A session is used for one response at a time. One reader task takes every server event off the socket and
hands those of the response in progress to its :class:`ResponseFeed`; session-level events (``session.updated``,
``rate_limits.updated``, errors, the close) are handled here. Nothing here retries: the engine decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.speech.error_parsing import MSG_TIMEOUT
from bot.speech.errors import SpeechConnectionError, SpeechError, SpeechTimeoutError
from bot.speech.realtime_protocol import (
    CODE_SESSION_EXPIRED,
    MSG_CUT,
    MSG_UNREACHABLE,
    error_from_event,
    error_from_handshake,
    exhausted_limit_reset,
    response_cancel,
    response_create,
    session_update,
)

log = logging.getLogger(__name__)

#: Server events that belong to a response (they carry its ``response_id``).
_RESPONSE_EVENTS = frozenset({
    "response.output_item.added", "response.content_part.added", "response.output_audio.delta",
    "response.output_audio_transcript.delta", "response.output_audio.done", "response.output_audio_transcript.done",
    "response.content_part.done", "response.output_item.done", "response.output_text.delta",
    "response.output_text.done",
})
#: Large enough for any event (the biggest, ``session.created``, is a few KiB; deltas ~10 KiB).
_MAX_MESSAGE = 16 * 1024 * 1024
#: A ping every this many seconds, so a session idling behind a NAT that dropped it is found dead at once.
_HEARTBEAT = 30.0
#: A cancelled response that has not ended after this long leaves its session in an unknown state: it is closed.
_ABANDON_TIMEOUT = 10.0

_event_ids = itertools.count(1)
#: Quoted spans of a server's message may echo the user's words; logs never carry them.
_QUOTED = re.compile(r"""(["'`“‘]).*?(["'`”’])""", re.DOTALL)


def next_event_id() -> str:
    return f"sb_{next(_event_ids)}"


class ResponseFeed:
    """The server events of one response, in order, then its end: a ``response.done`` event, or an error."""

    def __init__(self, request_id: str, create_event_id: str) -> None:
        self.request_id = request_id
        self.create_event_id = create_event_id
        self.response_id: str | None = None
        self.finished = False  # response.done (or an error ending it) has arrived
        self.abandoned = False  # nobody reads it any more; the session goes back to the pool once it is done
        self._queue: asyncio.Queue[dict[str, Any] | SpeechError] = asyncio.Queue()

    def put(self, item: dict[str, Any] | SpeechError) -> None:
        if not self.finished:
            self.finished = isinstance(item, SpeechError) or item.get("type") == "response.done"
            self._queue.put_nowait(item)

    async def next(self, timeout: float) -> dict[str, Any]:
        """The next event; raises the error that ended the response, or SpeechTimeoutError after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            raise SpeechTimeoutError(MSG_TIMEOUT, retryable=True) from None
        if isinstance(item, SpeechError):
            raise item
        return item


class RealtimeSession:
    """A connected session. ``voice``/``speed`` are what it is configured with; ``spoken`` once it produced
    audio (its voice is then fixed); ``broken`` says why it cannot be used any more (None while it can)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, secrets: tuple[str, ...],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ws = ws
        self.secrets = secrets
        self._clock = clock
        self.opened_at = clock()
        self.last_used = self.opened_at
        self.voice: str | None = None
        self.speed: float | None = None
        self.spoken = False
        self.broken: SpeechError | None = None
        self.rate_limit_reset: float | None = None  # seconds, from the last rate_limits.updated with one exhausted
        self.on_idle: Callable[[RealtimeSession], None] | None = None  # an abandoned response has ended
        self.on_broken: Callable[[RealtimeSession], None] | None = None  # it cannot serve any more
        self._created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._update: tuple[str, asyncio.Future[None], str] | None = None  # event id, answer, the voice asked
        self._feed: ResponseFeed | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read(), name="realtime-session-reader")

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, *, api_key: str | None, timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> RealtimeSession:
        """Open the WebSocket and wait for ``session.created``; every failure is a typed SpeechError."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            async with asyncio.timeout(timeout):
                ws = await http.ws_connect(
                    url, headers=headers, heartbeat=_HEARTBEAT, max_msg_size=_MAX_MESSAGE,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise error_from_handshake(exc.status, exc.headers or {}) from None
        except TimeoutError:
            raise SpeechTimeoutError(MSG_TIMEOUT, retryable=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            # ``from None``: aiohttp's exceptions may carry the request's headers, and with them the key.
            log.info("realtime connection error: %s", type(exc).__name__)
            raise SpeechConnectionError(MSG_UNREACHABLE, retryable=True) from None
        session = cls(ws, secrets=(api_key,) if api_key else (), clock=clock)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(session._created)
        except TimeoutError:
            await session.close()
            raise SpeechTimeoutError(MSG_TIMEOUT, retryable=True) from None
        except BaseException:
            await session.close()
            raise
        return session

    @property
    def busy(self) -> bool:
        return self._feed is not None

    @property
    def age(self) -> float:
        return self._clock() - self.opened_at

    async def configure(self, *, voice: str, speed: float, timeout: float) -> None:
        """Make the session speak in ``voice`` at ``speed``; only what differs is sent. Raises the server's
        refusal (an unknown voice, say) as a SpeechError; the session stays as it was and usable."""
        if self.voice == voice and self.speed == speed:
            return
        if self.spoken and self.voice != voice:
            raise AssertionError("a session that has spoken keeps its voice")
        event_id = next_event_id()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._update = (event_id, done, voice)
        try:
            await self._send(session_update(event_id, voice=None if self.voice == voice else voice, speed=speed))
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)
        except TimeoutError:
            self._break(SpeechTimeoutError(MSG_TIMEOUT, retryable=True))
            raise SpeechTimeoutError(MSG_TIMEOUT, retryable=True) from None
        finally:
            self._update = None
        self.voice, self.speed = voice, speed

    async def respond(self, text: str, style: str | None, request_id: str) -> ResponseFeed:
        """Ask for an out-of-band response reading ``text``; its events arrive on the returned feed."""
        if self.broken is not None:
            raise self.broken
        assert self._feed is None, "one response at a time"
        event_id = next_event_id()
        feed = self._feed = ResponseFeed(request_id, event_id)
        self.last_used = self._clock()
        await self._send(response_create(event_id, text, style, request_id))
        return feed

    def finish(self, feed: ResponseFeed) -> None:
        """The engine has read ``feed`` to its end: the session is free again."""
        if self._feed is feed:
            self._feed = None
            self.last_used = self._clock()

    async def abandon(self, feed: ResponseFeed) -> None:
        """Nobody reads ``feed`` any more: cancel the response; ``on_idle`` is called once it has ended."""
        if self._feed is not feed:
            return
        if feed.finished:
            self._end_abandoned(feed)
            return
        feed.abandoned = True
        self._spawn(self._expect_end(feed))
        if feed.response_id is not None:  # else it is cancelled as soon as response.created names it
            await self._cancel(feed.response_id)

    async def _expect_end(self, feed: ResponseFeed) -> None:
        await asyncio.sleep(_ABANDON_TIMEOUT)
        if not feed.finished:
            log.info("realtime: a cancelled response did not end; closing its session")
            self._break(SpeechTimeoutError(MSG_TIMEOUT, retryable=True))
            with contextlib.suppress(Exception):
                await self._ws.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel(self, response_id: str) -> None:
        with contextlib.suppress(SpeechError):
            await self._send(response_cancel(next_event_id(), response_id))

    async def close(self) -> None:
        if self.broken is None:
            self.broken = SpeechConnectionError(MSG_CUT, retryable=True, code="closed")
        with contextlib.suppress(Exception):
            await self._ws.close()
        self._reader.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.wait([self._reader])  # not ``await``: that would also swallow a cancellation of our caller

    async def _send(self, event: Any) -> None:
        if self.broken is not None:
            raise self.broken
        try:
            await self._ws.send_str(json.dumps(event))
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.info("realtime send failed: %s", type(exc).__name__)
            self._break(SpeechConnectionError(MSG_CUT, retryable=True, code="closed"))
            # set by _break (mypy still narrows it to None from the check above, across the await)
            raise self.broken from None  # type: ignore[misc]

    # -- the reader --

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        event = json.loads(message.data)
                    except ValueError:
                        log.warning("realtime: the server sent something that is not JSON")
                        continue
                    if isinstance(event, dict):
                        self._dispatch(event)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
        except Exception as exc:  # noqa: BLE001 - the reader must never die silently: the session is broken
            log.info("realtime reader stopped: %s", type(exc).__name__)
        code = self._ws.close_code
        if code not in (None, 1000):
            log.info("realtime session closed by the server (code %s)", code)
        self._break(SpeechConnectionError(MSG_CUT, retryable=True, code=f"closed_{code}"))

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        feed = self._feed
        if kind == "session.created":
            if not self._created.done():
                self._created.set_result(None)
        elif kind == "session.updated":
            if self._update is not None and not self._update[1].done():
                self._update[1].set_result(None)
        elif kind == "error":
            error = event.get("error")
            self._on_error(error if isinstance(error, dict) else {})
        elif kind == "rate_limits.updated":
            self.rate_limit_reset = exhausted_limit_reset(event.get("rate_limits"))
        elif kind == "response.created":
            response = event.get("response") or {}
            metadata = response.get("metadata") or {}
            if feed is not None and feed.response_id is None and (
                not metadata or metadata.get("speechbot_request") == feed.request_id
            ):
                feed.response_id = response.get("id")
                if feed.abandoned and feed.response_id is not None:
                    self._spawn(self._cancel(feed.response_id))
        elif kind == "response.done":
            response = event.get("response") or {}
            if feed is not None and response.get("id") == feed.response_id:
                feed.put(event)
                if feed.abandoned:
                    self._end_abandoned(feed)
        elif kind in _RESPONSE_EVENTS and feed is not None and event.get("response_id") == feed.response_id:
            if kind == "response.output_audio.delta":
                self.spoken = True
            if not feed.abandoned:
                feed.put(event)

    def _on_error(self, error: dict[str, Any]) -> None:
        about, code = error.get("event_id"), error.get("code")
        update = self._update if self._update is not None and about == self._update[0] else None
        failure = error_from_event(error, secrets=self.secrets, voice=update[2] if update else self.voice,
                                   rate_limit_reset=self.rate_limit_reset)
        harmless = code == "response_cancel_not_active"  # a cancel that crossed the response's end
        log.log(
            logging.DEBUG if harmless else logging.INFO if failure.status == 400 else logging.WARNING,
            "realtime error event: type=%s code=%s param=%s message=%s",
            error.get("type"), code, error.get("param"), _QUOTED.sub("[quoted]", failure.detail or ""),
        )
        feed = self._feed
        if not self._created.done():
            self._created.set_exception(failure)
            self._created.exception()  # retrieved: connect() re-raises it
        elif code == CODE_SESSION_EXPIRED:
            self._break(failure)
        elif update is not None:
            if not update[1].done():
                update[1].set_exception(failure)
        elif feed is not None and not feed.finished and not harmless and about in (None, feed.create_event_id):
            feed.put(failure)
            if feed.abandoned:
                self._end_abandoned(feed)

    def _end_abandoned(self, feed: ResponseFeed) -> None:
        self.finish(feed)
        if self.on_idle is not None:
            self.on_idle(self)

    def _break(self, error: SpeechError) -> None:
        """The session cannot be used any more: everyone waiting on it hears why."""
        if self.broken is None:
            self.broken = error
            if self.on_broken is not None:
                self.on_broken(self)
        for future in (self._created, self._update[1] if self._update else None):
            if future is not None and not future.done():
                future.set_exception(self.broken)
                future.exception()
        feed = self._feed
        if feed is not None:
            feed.put(self.broken)
            if feed.abandoned:
                self._end_abandoned(feed)
