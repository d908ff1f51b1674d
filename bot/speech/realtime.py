"""The Realtime speech engine: text in, audio out, through OpenAI's Realtime API (``SPEECH_MODEL=gpt-realtime...``).

OpenAI shuts its /audio/speech models down on 2027-01-06 and serves their replacement only over the Realtime
API, a WebSocket meant for conversations. Used as a reader, each text (cut at sentence ends into pieces short
enough for one response) becomes an out-of-band ``response.create`` whose instructions say to read it verbatim,
on a warm session of :mod:`bot.speech.realtime_pool` set to the voice and speed asked for
(:mod:`bot.speech.realtime_session`: why aiohttp's WebSocket). The 24 kHz PCM deltas stream into the bot's
pipeline as they arrive (``open`` returns with the first one, so voice playback starts there): ``pcm`` is passed
through, Ogg Opus and AAC are encoded as it comes (PyAV), WAV and FLAC once whole.

The model may reword a sentence: each response's transcript is compared with its text
(:mod:`bot.speech.transcript`); past the threshold the stream ends with :class:`SpeechRewordedError` (counted),
so that audio is never cached or uploaded, and whole-file callers ask once more. Failures before any audio of a
piece are retried on a fresh session within :class:`~bot.speech.retry.RetryPolicy`'s bounds (a rate limit after
its announced reset); once audio has gone out, a failure ends the stream with an error (a cut stream is never
mistaken for a short one). Token usage from ``response.done`` goes to the observer (the metrics).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from bot.audio.encode import STREAMABLE_FORMATS, StreamEncoder, encode_pcm
from bot.audio.formats import AudioFormat
from bot.i18n import N_
from bot.speech.catalog import REALTIME_SPEEDS
from bot.speech.client import SecretValue, Timeouts, loggable_detail
from bot.speech.errors import SpeechError, SpeechRewordedError, SpeechServiceError, SpeechTimeoutError
from bot.speech.local import split_for_synthesis
from bot.speech.models import SpeechRequest, SpeechStream, validate_request
from bot.speech.observer import SilentObserver, SpeechObserver
from bot.speech.realtime_pool import SessionPool
from bot.speech.realtime_protocol import (
    SAMPLE_RATE,
    TokenUsage,
    error_from_response_done,
    realtime_url,
)
from bot.speech.realtime_session import RealtimeSession, ResponseFeed
from bot.speech.retry import RetryPolicy
from bot.speech.transcript import DEFAULT_THRESHOLD, deviation

log = logging.getLogger(__name__)

#: Longest text read in one response. A response's output is capped (4096 tokens, audio included: a minute or
#: two of speech), and a short input is read more faithfully; pieces end at sentences where they can.
MAX_PIECE_CHARS = 600

MSG_EMPTY = N_("The speech service answered without any audio.")
MSG_NOT_AUDIO = N_("The speech service sent audio I could not read.")
MSG_REWORDED = N_(
    "The voice model said something other than the text, so I did not use its audio. Try again, or rephrase it."
)

_request_ids = itertools.count(1)


class RealtimeSpeechEngine:
    """A :class:`~bot.speech.models.SpeechBackend` over the Realtime API. Call :meth:`start` once (it opens the
    spare session in the background) and :meth:`close` at the end (it closes every session)."""

    name = "realtime"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: SecretValue | str | None,
        model: str,
        voices: Sequence[str],
        default_voice: str,
        timeouts: Timeouts = Timeouts(),
        policy: RetryPolicy = RetryPolicy(),
        max_sessions: int = 8,
        observer: SpeechObserver | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = realtime_url(base_url, model)
        self._key = api_key if isinstance(api_key, str) or api_key is None else api_key.get_secret_value()
        self.model = model
        self.voices = tuple(voices)
        self.timeouts = timeouts
        self.policy = policy
        self.observer: SpeechObserver = observer or SilentObserver()
        self.threshold = threshold
        self._sleep = sleep
        self._clock = clock
        self.pool = SessionPool(
            self._connect, max_sessions=max_sessions, spare=(default_voice, 1.0), setup_timeout=timeouts.first_byte,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"RealtimeSpeechEngine(url={self._url!r})"

    async def start(self) -> None:
        self.pool.start()

    async def open(self, request: SpeechRequest) -> SpeechStream:
        """Validate (voices, 0.25-1.5 speed), then start reading: returns once the first audio has arrived."""
        request = validate_request(request, self.voices, speeds=REALTIME_SPEEDS)
        stream = _RealtimeStream(self, request, split_for_synthesis(request.text, MAX_PIECE_CHARS))
        try:
            await stream.start()
        except BaseException:  # failed, or cancelled (nobody wants it any more): the session must not stay leased
            await stream.aclose()
            raise
        return stream

    async def close(self) -> None:
        await self.pool.close()

    async def _connect(self) -> RealtimeSession:
        return await RealtimeSession.connect(
            self._http, self._url, api_key=self._key, timeout=self.timeouts.first_byte, clock=self._clock
        )


#: Encoding: the first second of audio is encoded delta by delta (playback starts with the first), the rest in
#: batches of this much, since each call costs as much again as the audio in it (measured: 100 ms deltas one by
#: one ~8 ms of CPU per second of speech, 200 ms ~5); generation runs ahead of playback, so it never waits on it.
_PROMPT_BYTES = SAMPLE_RATE * 2
_BATCH_BYTES = SAMPLE_RATE * 2 * 4 // 10


class _Encoder:
    """24 kHz PCM in, the requested format out: pcm as is, opus/aac as it comes, wav/flac once whole."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        streamed = fmt in STREAMABLE_FORMATS and fmt is not AudioFormat.PCM
        self._stream = StreamEncoder(fmt, SAMPLE_RATE, live=True) if streamed else None
        self._whole: list[bytes] | None = [] if fmt not in STREAMABLE_FORMATS else None
        self._pending = bytearray()  # PCM waiting for a batch; always whole samples when encoded
        self._fed = 0

    def feed(self, pcm: bytes) -> bytes:
        if self._whole is not None:
            self._whole.append(pcm)
            return b""
        self._pending += pcm
        if self._fed >= _PROMPT_BYTES and len(self._pending) < _BATCH_BYTES:
            return b""
        take = len(self._pending) & ~1  # a sample split across two deltas waits for its second byte
        chunk = bytes(self._pending[:take])
        del self._pending[:take]
        self._fed += take
        return self._stream.feed(chunk) if self._stream is not None else chunk

    async def finish(self) -> bytes:
        if self._whole is not None:
            pcm = b"".join(self._whole)
            return await asyncio.to_thread(encode_pcm, pcm[: len(pcm) & ~1], SAMPLE_RATE, self.format)
        rest = bytes(self._pending[: len(self._pending) & ~1])
        self._pending.clear()
        if self._stream is None:
            return rest
        return self._stream.feed(rest) + self._stream.finish()


class _RealtimeStream:
    """One request being read: its pieces, one response each, on one session leased from the pool."""

    def __init__(self, engine: RealtimeSpeechEngine, request: SpeechRequest, pieces: list[str]) -> None:
        self._engine = engine
        self._request = request
        self._pieces = pieces
        self._id = f"r{next(_request_ids)}"
        self._encoder = _Encoder(request.format)
        self._session: RealtimeSession | None = None
        self._feed: ResponseFeed | None = None
        self._first = b""
        self._transcript: list[str] = []
        self._done = False
        self._closed = False
        self._iterated = False

    @property
    def format(self) -> AudioFormat:
        return self._request.format

    async def start(self) -> None:
        """Start the first piece (retrying within bounds) until its first audio is in hand."""
        self._first = await self._begin(0)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise RuntimeError("a speech stream can only be read once")
        self._iterated = True
        engine = self._engine
        try:
            for index, piece in enumerate(self._pieces):
                pcm: bytes | None = self._first if index == 0 else await self._begin(index)
                while True:
                    if pcm and (out := self._encoder.feed(pcm)):
                        yield out
                    if self._closed:
                        return
                    pcm = await self._next_audio(engine.timeouts.between_chunks, piece)
                    if pcm is None:
                        break
            if out := await self._encoder.finish():
                yield out
            self._done = True
        except SpeechError as error:
            log.warning("realtime stream ended early: kind=%s code=%s", type(error).__name__, error.code)
            self._drop(error)
            raise
        finally:
            if self._done:
                self._give_back()

    async def aclose(self) -> None:
        """Stop reading: a response still running is cancelled; its session serves again once it has ended."""
        if self._closed:
            return
        self._closed = True
        session, feed = self._session, self._feed
        if self._done or session is None:
            return
        if feed is not None and not feed.finished:
            self._session = self._feed = None
            await session.abandon(feed)  # the pool takes it back when response.done arrives
        else:
            self._give_back()

    # -- one piece --

    async def _begin(self, index: int) -> bytes:
        """Ask for piece ``index``; return its first audio. Nothing of it has been heard yet, so failures are
        retried (on a fresh session when the old one broke) while the retry policy allows."""
        engine, request, policy = self._engine, self._request, self._engine.policy
        started, attempt = engine._clock(), 0
        while True:
            attempt += 1
            try:
                if self._session is None:
                    self._session = await engine.pool.acquire(request.voice, request.speed)
                self._transcript = []
                self._feed = await self._session.respond(self._pieces[index], request.instructions, self._id)
                first = await self._next_audio(engine.timeouts.first_byte, self._pieces[index])
                if first is None:
                    raise SpeechServiceError(MSG_EMPTY, status=200)
                return first
            except SpeechError as error:
                self._drop(error)
                elapsed = engine._clock() - started
                delay = _retry_delay(policy, error, attempt, elapsed)
                if delay is None:
                    log.log(
                        logging.WARNING if error.status != 400 else logging.INFO,
                        "realtime request failed: status=%s code=%s kind=%s attempts=%d elapsed=%.2fs detail=%s",
                        error.status, error.code, type(error).__name__, attempt, elapsed,
                        loggable_detail(error.detail, request),
                    )
                    raise
                log.info("realtime attempt %d failed: status=%s code=%s; retrying in %.2fs",
                         attempt, error.status, error.code, delay)
                await engine._sleep(delay)

    async def _next_audio(self, timeout: float, piece: str) -> bytes | None:
        """The next PCM delta of the current response, or None once it is done (checked and accounted)."""
        feed = self._feed
        assert feed is not None
        while True:
            event = await feed.next(timeout)
            kind = event.get("type")
            if kind == "response.output_audio.delta":
                try:
                    return base64.b64decode(event.get("delta") or "", validate=True)
                except (binascii.Error, ValueError):
                    raise SpeechServiceError(MSG_NOT_AUDIO, status=200) from None
            if kind == "response.output_audio_transcript.delta":
                self._transcript.append(str(event.get("delta") or ""))
            elif kind == "response.output_audio_transcript.done" and isinstance(event.get("transcript"), str):
                self._transcript = [event["transcript"]]
            elif kind == "response.done":
                self._finished(event.get("response") or {}, piece)
                return None

    def _finished(self, response: dict[str, Any], piece: str) -> None:
        """``response.done``: count the tokens, raise its failure, or check what it said against ``piece``."""
        engine, session, feed = self._engine, self._session, self._feed
        assert session is not None and feed is not None
        usage = TokenUsage.from_event(response)
        if usage.input_tokens or usage.output_tokens:
            engine.observer.tokens_used(engine.name, usage.input_tokens, usage.output_tokens, usage.output_audio_tokens)
        session.finish(feed)
        self._feed = None
        failure = error_from_response_done(
            response, secrets=session.secrets, voice=self._request.voice, rate_limit_reset=session.rate_limit_reset
        )
        if failure is not None:
            raise failure
        transcript = "".join(self._transcript)
        if not transcript:
            log.debug("realtime response without a transcript: not checked")
            return
        found = deviation(piece, transcript)
        rejected = found.exceeds(engine.threshold)
        engine.observer.transcript_checked(engine.name, found.ratio, rejected)
        if rejected:
            log.warning(
                "realtime: the transcript differs from the text (%d of %d words; threshold %.0f%%): audio not used",
                found.edits, found.words, engine.threshold * 100,
            )
            raise SpeechRewordedError(MSG_REWORDED, status=200, code="reworded")

    # -- the session --

    def _drop(self, error: SpeechError) -> None:
        """After ``error``: a session whose state is unknown (a timeout mid-response) is closed; a broken one
        goes back to be closed; one whose response merely failed serves again."""
        session, feed = self._session, self._feed
        self._session = self._feed = None
        if session is None:
            return
        pool = self._engine.pool
        if isinstance(error, SpeechTimeoutError) or (feed is not None and not feed.finished):
            pool.discard(session)
        else:
            if feed is not None:
                session.finish(feed)
            pool.release(session)

    def _give_back(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._engine.pool.release(session)


def _retry_delay(policy: RetryPolicy, error: SpeechError, attempt: int, elapsed: float) -> float | None:
    """Seconds before the next attempt, or None when there is none (not retryable, or out of bounds)."""
    if not error.retryable or attempt >= policy.max_attempts:
        return None
    delay = policy.delay(attempt, error.retry_after)
    if delay is None or elapsed + delay > policy.max_total:
        return None
    return delay
