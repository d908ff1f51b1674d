"""The OpenAI-compatible speech backend: ``POST {base_url}/audio/speech`` over the bot's shared aiohttp session.

It sends only the fields of the spec's ``CreateSpeechRequest`` (always ``response_format``: peers default to
different formats), streams the body, reads the real format from its first bytes, retries only while no
audio has reached the caller, and never lets the API key into a message, a repr or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import aiohttp

from bot.audio.formats import PCM_SAMPLE_RATE, SNIFF_BYTES, AudioFormat, looks_like_text, sniff
from bot.i18n import N_
from bot.speech.capabilities import EndpointCapabilities
from bot.speech.error_parsing import MSG_TIMEOUT, error_from_response
from bot.speech.errors import (
    SpeechAuthError,
    SpeechConnectionError,
    SpeechError,
    SpeechRejectedError,
    SpeechServiceError,
    SpeechTimeoutError,
)
from bot.speech.models import SpeechRequest, SpeechStream, validate_request
from bot.speech.retry import RetryPolicy

log = logging.getLogger(__name__)

#: Models that reject ``instructions`` (the spec: "Does not work with tts-1 or tts-1-hd").
MODELS_WITHOUT_INSTRUCTIONS = frozenset({"tts-1", "tts-1-hd"})
#: An error body longer than this is cut: only its start is ever shown.
MAX_ERROR_BODY = 64 * 1024

MSG_UNREACHABLE = N_("Could not reach the speech service.")
MSG_NOT_AUDIO = N_("The speech service sent something that is not audio.")
MSG_EMPTY = N_("The speech service answered without any audio.")
MSG_CUT = N_("The speech service stopped sending audio before the end.")

#: What playback falls back to, in order, when the endpoint cannot make the format asked for (Opus): the bot
#: transcodes both for voice, and every server makes them (Piper servers without ffmpeg make nothing else).
PLAYBACK_FALLBACKS = (AudioFormat.WAV, AudioFormat.PCM)
#: Statuses with which a server refuses a request it cannot serve as asked (501: "not implemented").
_REFUSAL_STATUSES = frozenset({400, 415, 422, 501})
#: Error codes servers use for a format they cannot make (local-tts-studio, loudness-tts, Kokoro-FastAPI).
_FORMAT_CODES = re.compile(r"format", re.IGNORECASE)
#: Sample rates a pcm body may plausibly announce.
_PCM_RATES = range(8_000, 192_001)

_CONNECTION_ERRORS = (aiohttp.ClientError, OSError)


class SecretValue(Protocol):
    """``bot.config.Secret`` or anything else that hands out its value only when asked."""

    def get_secret_value(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for a connection, from starting a request to its first audio bytes (connecting
    included), and between two chunks of the body. There is no total: a long text legitimately takes long,
    a silent server does not."""

    connect: float = 5.0
    first_byte: float = 20.0
    between_chunks: float = 15.0


class OpenAISpeechClient:
    """A :class:`~bot.speech.models.SpeechBackend` for OpenAI and compatible servers (self-hosted ones need no key).

    ``sleep`` and ``clock`` are injectable so tests can observe retry delays without waiting for them.
    """

    name = "openai"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: SecretValue | str | None,
        model: str,
        voices: Sequence[str],
        policy: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        capabilities: EndpointCapabilities | None = None,
    ) -> None:
        self._session = session
        self._url = f"{base_url.rstrip('/')}/audio/speech"
        self._key = api_key if isinstance(api_key, str) or api_key is None else api_key.get_secret_value()
        self.model = model
        self.voices = tuple(voices)
        self.policy = policy
        self.timeouts = timeouts
        self._sleep = sleep
        self._clock = clock
        self._client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect)
        #: What this endpoint was found to do (shared with ``/settings show`` and the speech service).
        self.capabilities = capabilities or EndpointCapabilities(voices=self.voices)
        self._refused_formats = self.capabilities.refused_formats

    def __repr__(self) -> str:
        return f"OpenAISpeechClient(url={self._url!r}, model={self.model!r})"

    @property
    def refused_formats(self) -> frozenset[AudioFormat]:
        """Formats this endpoint said it cannot make (remembered since start): playback no longer asks for them."""
        return frozenset(self._refused_formats)

    def playback_formats(self, preferred: AudioFormat = AudioFormat.OPUS) -> list[AudioFormat]:
        """What a playback request asks for, in order: ``preferred``, then wav and pcm, minus refused formats."""
        order = dict.fromkeys((preferred, *PLAYBACK_FALLBACKS))
        return [fmt for fmt in order if fmt not in self._refused_formats] or [PLAYBACK_FALLBACKS[-1]]

    async def open(self, request: SpeechRequest) -> SpeechStream:
        """Validate, send and start reading; retries per :class:`RetryPolicy` until the first audio is in hand.

        A request for playback (``request.playback``) negotiates its format: when the endpoint refuses the one
        asked for (a 4xx naming it), wav and then pcm are asked for, and the refusal is remembered.
        """
        # the voices offered now (refreshed while the bot runs), else those it was made with
        request = validate_request(request, self.capabilities.voices or self.voices)
        if not request.playback:
            return await self._open(request)
        formats = self.playback_formats(request.format)
        for index, fmt in enumerate(formats):
            try:
                stream = await self._open(replace(request, format=fmt))
            except SpeechRejectedError as error:
                if index == len(formats) - 1 or not refuses_format(error, fmt):
                    raise
                self._refused_formats.add(fmt)
                log.warning(
                    "the speech service at %s cannot make %s (HTTP %s: %s); voice and read-aloud ask for %s instead",
                    self._url, fmt.value, error.status, error.detail, formats[index + 1].value,
                )
            else:
                self.capabilities.playback_format = stream.format
                return stream
        raise AssertionError("unreachable")

    @property
    def accepts_instructions(self) -> bool | None:
        """Whether this endpoint took ``instructions`` (None: not sent yet); once refused they are left out."""
        return self.capabilities.instructions

    async def _open(self, request: SpeechRequest) -> SpeechStream:
        """One request, and once more without ``instructions`` when a strict server refused that field (a 4xx
        naming it, such as FastAPI's 422 "Extra inputs are not permitted"): remembered for this endpoint."""
        sends_instructions = "instructions" in self.request_body(request)
        try:
            stream = await self._open_once(request)
        except SpeechError as error:
            if error.unavailable == "voice":  # "voice not found": its list may have changed (VoiceRefresher)
                self.capabilities.voice_refused(request.voice)
            if not (isinstance(error, SpeechRejectedError) and sends_instructions
                    and refuses_field(error, "instructions")):
                raise
            self.capabilities.instructions = False
            log.warning(
                "the speech service at %s does not accept instructions (HTTP %s: %s); sending requests without them",
                self._url, error.status, error.detail,
            )
            return await self._open_once(request)
        if sends_instructions:
            self.capabilities.instructions = True
        return stream

    async def _open_once(self, request: SpeechRequest) -> SpeechStream:
        body = self.request_body(request)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            # A retry waits for its first byte no longer than what is left of ``policy.max_total``, so a server
            # that never answers cannot stretch the request past it (the first attempt gets its full timeout).
            first_byte = self.timeouts.first_byte
            if attempt > 1:
                first_byte = max(0.0, min(first_byte, self.policy.max_total - (self._clock() - started)))
            try:
                stream = await self._attempt(body, request.format, first_byte)
            except SpeechError as error:
                elapsed = self._clock() - started
                delay = self._retry_delay(error, attempt, elapsed)
                if delay is None:
                    log.log(
                        logging.ERROR if isinstance(error, SpeechAuthError) else logging.WARNING,
                        "speech request failed: status=%s code=%s kind=%s attempts=%d elapsed=%.2fs detail=%s",
                        error.status, error.code, type(error).__name__, attempt, elapsed,
                        loggable_detail(error.detail, request),
                    )
                    raise
                log.info(
                    "speech attempt %d failed: status=%s code=%s; retrying in %.2fs (elapsed %.2fs)",
                    attempt, error.status, error.code, delay, elapsed,
                )
                await self._sleep(delay)
            else:
                log.debug(
                    "speech stream open: format=%s attempts=%d elapsed=%.2fs",
                    stream.format, attempt, self._clock() - started,
                )
                return stream

    async def start(self) -> None:
        """Nothing to prepare: connections are opened by the shared session as requests need them."""

    async def close(self) -> None:
        """Nothing to release: the session belongs to the caller."""

    def request_body(self, request: SpeechRequest) -> dict[str, Any]:
        """The JSON body for a validated request: spec fields only, ``response_format`` always."""
        body: dict[str, Any] = {
            "model": self.model,
            "input": request.text,
            "voice": request.voice,
            "response_format": request.format.value,
        }
        if request.speed != 1.0:
            body["speed"] = request.speed
        refused = self.capabilities.instructions is False
        takes_instructions = self.model not in MODELS_WITHOUT_INSTRUCTIONS and not refused
        if request.instructions and takes_instructions:
            body["instructions"] = request.instructions
        return body

    def _retry_delay(self, error: SpeechError, attempt: int, elapsed: float) -> float | None:
        if not error.retryable or attempt >= self.policy.max_attempts:
            return None
        delay = self.policy.delay(attempt, error.retry_after)
        if delay is None or elapsed + delay > self.policy.max_total:
            return None
        return delay

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/octet-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    async def _attempt(self, body: dict[str, Any], requested: AudioFormat, first_byte: float) -> _HTTPSpeechStream:
        """One request, up to the sniffed first bytes; every failure is a SpeechError saying if it may be retried."""
        try:
            async with asyncio.timeout(first_byte):
                response = await self._session.post(
                    self._url, json=body, headers=self._headers(), timeout=self._client_timeout
                )
                try:
                    if response.status != 200:
                        raise error_from_response(
                            response.status,
                            response.headers,
                            await _read_at_least(response, MAX_ERROR_BODY),
                            secrets=[self._key] if self._key else [],
                            asked=body,
                        )
                    head = await _read_at_least(response, SNIFF_BYTES)
                    audio_format = _sniff_body(head, requested)
                    rate = pcm_sample_rate(response.headers) if audio_format is AudioFormat.PCM else None
                except BaseException:
                    response.close()
                    raise
        except TimeoutError:
            raise SpeechTimeoutError(MSG_TIMEOUT, retryable=True) from None
        except _CONNECTION_ERRORS as exc:
            # ``from None``: aiohttp exceptions may carry the request headers, and with them the key.
            log.info("speech connection error: %s", type(exc).__name__)
            raise SpeechConnectionError(MSG_UNREACHABLE, retryable=True) from None
        if rate is not None:
            self.capabilities.pcm_rate = rate
        if rate is not None and rate != PCM_SAMPLE_RATE:
            log.debug("the speech service sent pcm at %d Hz; resampling it to %d Hz", rate, PCM_SAMPLE_RATE)
        resample = rate if rate is not None and rate != PCM_SAMPLE_RATE else None
        return _HTTPSpeechStream(response, head, audio_format, self.timeouts.between_chunks, resample)


class _HTTPSpeechStream:
    """An open 200 response: the sniffed format, then the body's chunks (the sniffed head first).

    A body that stops early raises SpeechError rather than ending quietly, so a cut file is never mistaken for
    a short one (aiohttp reports a connection closed before ``Content-Length`` or the last chunk as a
    ClientPayloadError).
    """

    def __init__(
        self, response: aiohttp.ClientResponse, head: bytes, audio_format: AudioFormat, gap: float,
        resample_from: int | None = None,
    ) -> None:
        self._response = response
        self._head = head
        self._format = audio_format
        self._gap = gap
        self._iterated = False
        self._resampler = PcmResampler(resample_from) if resample_from is not None else None

    @property
    def format(self) -> AudioFormat:
        return self._format

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise RuntimeError("a speech stream can only be read once")
        self._iterated = True
        if self._resampler is not None:
            async for chunk in self._resampled(self._read()):
                yield chunk
            return
        async for chunk in self._read():
            yield chunk

    async def _resampled(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        assert self._resampler is not None
        async for chunk in chunks:
            if out := self._resampler.feed(chunk):
                yield out
        if out := self._resampler.finish():
            yield out

    async def _read(self) -> AsyncIterator[bytes]:
        received = len(self._head)
        yield self._head
        while True:
            try:
                async with asyncio.timeout(self._gap):
                    chunk = await self._response.content.readany()
            except TimeoutError:
                raise self._broken(SpeechTimeoutError(MSG_TIMEOUT, retryable=True), received, "timeout") from None
            except _CONNECTION_ERRORS as exc:
                cut = SpeechConnectionError(MSG_CUT, retryable=True)
                raise self._broken(cut, received, type(exc).__name__) from None
            if not chunk:
                break
            received += len(chunk)
            yield chunk
        self._response.release()

    async def aclose(self) -> None:
        self._response.close()

    def _broken(self, error: SpeechError, received: int, reason: str) -> SpeechError:
        log.warning("speech stream broke after %d bytes (%s)", received, reason)
        self._response.close()
        return error


class PcmResampler:
    """s16le mono pcm at ``rate`` in, the contract's 24 kHz out, chunk by chunk (odd bytes carried over)."""

    def __init__(self, rate: int) -> None:
        from bot.audio.encode import StreamEncoder

        self._encoder = StreamEncoder(AudioFormat.PCM, rate)
        self._odd = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._odd + chunk
        even = len(data) - len(data) % 2
        self._odd = data[even:]
        return self._encoder.feed(data[:even])

    def finish(self) -> bytes:
        return self._encoder.finish()


def pcm_sample_rate(headers: Mapping[str, str]) -> int | None:
    """The sample rate a pcm body is announced with: ``X-Sample-Rate``, else a ``rate=`` parameter of its content
    type (``audio/pcm;rate=22050``, ``audio/L16;rate=16000``); None when neither says (the contract's 24 kHz)."""
    candidates = [headers.get("X-Sample-Rate", "")]
    if match := re.search(r";\s*rate\s*=\s*\"?(\d+)", headers.get("Content-Type", ""), re.IGNORECASE):
        candidates.append(match.group(1))
    for candidate in candidates:
        value = candidate.strip()
        if value.isdigit() and int(value) in _PCM_RATES:
            return int(value)
    return None


def refuses_field(error: SpeechError, name: str) -> bool:
    """Whether ``error`` is a refusal (400/415/422/501) blaming the request field ``name``."""
    if error.status not in _REFUSAL_STATUSES:
        return False
    return error.param == name or re.search(rf"\b{re.escape(name)}\b", error.detail or "") is not None


def refuses_format(error: SpeechError, fmt: AudioFormat) -> bool:
    """Whether ``error`` is the endpoint saying it cannot make ``fmt``: a refusal (400/415/422/501) whose field,
    code or reason names the response format or ``fmt`` itself."""
    if error.status not in _REFUSAL_STATUSES:
        return False
    if error.param == "response_format" or (error.code and _FORMAT_CODES.search(error.code)):
        return True
    detail = error.detail or ""
    return "response_format" in detail or re.search(rf"\b{fmt.value}\b", detail, re.IGNORECASE) is not None


async def _read_at_least(response: aiohttp.ClientResponse, size: int) -> bytes:
    """Read until ``size`` bytes are in hand or the body ends (whole chunks, so possibly more)."""
    parts: list[bytes] = []
    total = 0
    while total < size and (chunk := await response.content.readany()):
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


#: Containers told by a real magic number; mp3 and ADTS AAC are told by a frame sync word that raw pcm starts
#: with by chance (a first sample of -1 is ``FF FF``: "mp3"), so it does not override an asked-for pcm.
_MAGIC_FORMATS = frozenset({AudioFormat.OPUS, AudioFormat.WAV, AudioFormat.FLAC})


def _sniff_body(head: bytes, requested: AudioFormat) -> AudioFormat:
    """The body's real format from its magic bytes; headerless pcm is accepted only when it was asked for."""
    if not head:
        raise SpeechServiceError(MSG_EMPTY, status=200)
    found = sniff(head)
    if found is not None and found not in _MAGIC_FORMATS and requested is AudioFormat.PCM and not head.startswith(
        b"ID3"
    ):
        found = None  # a sync word at the start of pcm: pcm it is (a real mp3 from a server says ID3 first)
    if found is None and requested is AudioFormat.PCM and not looks_like_text(head):
        found = AudioFormat.PCM
    if found is None:
        raise SpeechServiceError(MSG_NOT_AUDIO, status=200)
    return found


_QUOTED = re.compile(r"""(["'`“‘])(.*?)(["'`”’])""", re.DOTALL)


def loggable_detail(detail: str | None, request: SpeechRequest) -> str | None:
    """The server's reason with the user's words taken out: logs never carry message text, but keep the rest
    of what the server said (the voice or format it names, what it can do instead).

    A verbatim copy of the text or the instructions goes, and so does a quoted span taken from them (servers
    that echo input quote it, possibly cut or re-spaced).
    """
    if not detail:
        return detail
    for words in (request.text, request.instructions):
        if words:
            detail = detail.replace(words, "[text]")
    said = " ".join(f"{request.text} {request.instructions or ''}".split()).casefold()
    names = {request.voice.casefold(), request.format.value}

    def quoted(match: re.Match[str]) -> str:
        inner = " ".join(match.group(2).split()).casefold().rstrip("….")
        if inner and inner not in names and inner in said:
            return "[quoted]"
        return match.group(0)

    return _QUOTED.sub(quoted, detail)

