"""A strict loopback OpenAI-compatible speech endpoint: ``POST /v1/audio/speech`` on 127.0.0.1.

It is strict where the bot must be correct: any other route or method, a body that is not JSON, a body
outside the spec's ``CreateSpeechRequest``, a missing ``response_format`` (peers default to different
formats) or ``instructions`` sent to ``tts-1`` is answered with an OpenAI-shaped 400/404 *and* recorded in
``failures``, which the ``speech_endpoint`` fixture turns into a test failure. A wrong bearer key gets a 401,
like OpenAI, without being a violation (tests provoke it on purpose).

Audio is served chunked with a realistic content type; :class:`Fault` makes the endpoint misbehave the way
real servers do (each error body shape of the speech note §4.1, retry headers, slow or cut streams, bodies
that are not audio, hangs). Usage::

    async with SpeechEndpoint(api_key="sk-test-...") as endpoint:      # or the ``speech_endpoint`` fixture
        endpoint.inject(Fault(status=429, headers={"Retry-After": "2"}))
        ...  # point the client at endpoint.base_url ("http://127.0.0.1:PORT/v1")
        assert endpoint.requests[-1].json["response_format"] == "opus"
        assert received_bytes == endpoint.served[-1]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import TracebackType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from bot.speech.errors import SpeechError
from tests.loopback.openai_spec import error_response_problems, speech_request_problems

SPEECH_PATH = "/v1/audio/speech"
MODELS_PATH = "/v1/models"
#: Not OpenAI's (it answers 404 there, like any unknown route); Kokoro-FastAPI, loudness-tts and others list
#: their voices here, each in its own shape.
VOICES_PATH = "/v1/audio/voices"

#: Receives the validated request body, returns the audio and its content type.
AudioSource = Callable[[Mapping[str, Any]], Awaitable[tuple[bytes, str]]]

#: What OpenAI-compatible servers label each format with (opus is an Ogg file whatever the label says).
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class ErrorShape(StrEnum):
    """The error bodies seen in the wild (speech note §4.1)."""

    OPENAI = "openai"  # {"error": {"message", "type", "param", "code"}}: OpenAI, LocalAI
    ERROR_STRING = "error_string"  # {"error": "..."}: openai-edge-tts
    DETAIL_OBJECT = "detail_object"  # {"detail": {"error", "message", "type"}}: Kokoro-FastAPI
    DETAIL_LIST = "detail_list"  # {"detail": [{"loc", "msg", "type"}]}: FastAPI validation (422)
    DETAIL_STRING = "detail_string"  # {"detail": "..."}: Orpheus-FastAPI
    FLAT = "flat"  # {"message", "code", "type", "param"}: openedai-speech
    PLAIN_TEXT = "plain_text"
    HTML = "html"  # a proxy's error page


def error_body(
    shape: ErrorShape, message: str, *, code: str | None = None, error_type: str = "invalid_request_error"
) -> tuple[bytes, str]:
    """An error body of ``shape`` carrying ``message`` (and ``code`` where the shape has one)."""
    data: Any
    match shape:
        case ErrorShape.OPENAI:
            data = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        case ErrorShape.ERROR_STRING:
            data = {"error": message}
        case ErrorShape.DETAIL_OBJECT:
            data = {"detail": {"error": code or "processing_error", "message": message, "type": error_type}}
        case ErrorShape.DETAIL_LIST:
            data = {"detail": [{"loc": ["body", "input"], "msg": message, "type": "value_error", "input": "x"}]}
        case ErrorShape.DETAIL_STRING:
            data = {"detail": message}
        case ErrorShape.FLAT:
            data = {"message": message, "code": code, "type": "ServiceUnavailableError", "param": None}
        case ErrorShape.PLAIN_TEXT:
            return message.encode(), "text/plain; charset=utf-8"
        case ErrorShape.HTML:
            page = f"<html><head><title>{message}</title></head><body><h1>{message}</h1></body></html>"
            return page.encode(), "text/html; charset=utf-8"
    return json.dumps(data).encode(), "application/json"


@dataclass(frozen=True)
class Fault:
    """One way to misbehave, applied to the next ``times`` valid requests (one each).

    ``status != 200`` answers an error body of ``shape`` carrying ``message`` and ``code``. ``body`` replaces
    the error body or, with 200, the audio (a mapping is sent as JSON, a str as text); ``not_audio`` serves a
    proxy's HTML page with 200; ``content_type`` relabels whatever is sent. ``cut_after`` promises the whole
    body in ``Content-Length`` but closes the connection after that many bytes; ``chunk_delay`` pauses between
    chunks; ``first_byte_delay`` holds the headers back; ``hang`` never answers at all.
    """

    status: int = 200
    shape: ErrorShape = ErrorShape.OPENAI
    message: str = "The server had an error while processing your request."
    code: str | None = None
    error_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Mapping[str, Any] | None = None
    not_audio: bool = False
    content_type: str | None = None
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    hang: bool = False
    times: int = 1


@dataclass(frozen=True)
class RecordedRequest:
    """A request as received. ``headers`` (case-insensitive) keep ``Authorization`` so tests can check it."""

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    received_at: float


#: The fields a strict server's request model declares when it knows nothing of ``instructions`` (pydantic
#: ``extra="forbid"``): anything else is a 422 "Extra inputs are not permitted".
CLASSIC_FIELDS = frozenset({"model", "input", "voice", "response_format", "speed"})


@dataclass(frozen=True)
class ServerQuirks:
    """How real compatible servers differ from OpenAI (all off by default: the double is OpenAI).

    ``formats``: what it can make; others get the 400 of a Piper server without ffmpeg (``wav_only()``).
    ``fields``: a strict request model; a field outside is a 422 in FastAPI's shape (``strict()``).
    ``pcm_rate``: pcm at this rate, announced by ``pcm_rate_header`` ("x-sample-rate": ``X-Sample-Rate``,
    "content-type": ``audio/pcm;rate=N``, None: not at all). ``voices``: the voices it has; another is answered
    ``unknown_voice_status`` with a reason (loudness-tts says 503 for a voice not downloaded). ``speeds``: the
    range it clamps ``speed`` into; ``refused_speeds``: the range outside which ``speed`` is a 400 instead
    (loudness-tts: 0.5-2). ``voice_list``: the JSON answered to ``GET /v1/audio/voices`` (the server's own
    shape), None: no such route (404, as OpenAI). Every voice sounds the same (piper's joe) unless
    ``distinct_voices``: then each voice name speaks at its own pitch (the audio differs, as real voices do).
    """

    formats: frozenset[str] | None = None
    fields: frozenset[str] | None = None
    pcm_rate: int = 24_000
    pcm_rate_header: str | None = "x-sample-rate"
    voices: frozenset[str] | None = None
    unknown_voice_status: int = 503
    speeds: tuple[float, float] | None = None
    refused_speeds: tuple[float, float] | None = None
    voice_list: Any = None
    distinct_voices: bool = False

    @classmethod
    def wav_only(cls) -> ServerQuirks:
        return cls(formats=frozenset({"wav", "pcm"}))

    @classmethod
    def strict(cls) -> ServerQuirks:
        return cls(fields=CLASSIC_FIELDS)


class SpeechEndpoint:
    """The endpoint double. ``await start()``, point the client at ``base_url``, ``await close()``."""

    def __init__(
        self, *, api_key: str | None = None, audio: AudioSource | None = None, chunks: int = 4,
        quirks: ServerQuirks | None = None,
    ) -> None:
        self.api_key = api_key
        self._audio = audio or local_speech
        self._chunks = chunks
        self.quirks = quirks or ServerQuirks()
        self.requests: list[RecordedRequest] = []
        #: ``GET /v1/audio/voices`` requests (the bot asks at start and in ``check``), apart from ``requests``.
        self.voice_list_requests: list[RecordedRequest] = []
        self.served: list[bytes] = []
        self.failures: list[str] = []
        self._faults: list[Fault] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        if self._audio is local_speech:
            await warm_up()

    async def close(self) -> None:
        """Stop serving; hanging and paused handlers return at once."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SpeechEndpoint:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def inject(self, fault: Fault) -> None:
        """Queue ``fault`` for the next ``fault.times`` valid requests (after any already queued)."""
        self._faults.extend([fault] * fault.times)

    def clear_faults(self) -> None:
        """Forget the faults not yet used (a test that injected more than the client consumed)."""
        self._faults.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        recorded = RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body, time.monotonic())
        if (request.method, request.path) == ("GET", VOICES_PATH):
            self.voice_list_requests.append(recorded)  # asked at every start: kept apart from what tests count
            return self._voices(request)
        self.requests.append(recorded)
        if (request.method, request.path) == ("GET", MODELS_PATH):
            return self._models(request)
        if (request.method, request.path) != ("POST", SPEECH_PATH):
            return self._violation(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url")
        if request.content_type != "application/json":
            return self._violation(400, f"Content-Type must be application/json, not {request.content_type!r}.")
        if not isinstance(body, dict):
            return self._violation(400, "The request body is not a JSON object.")
        if problems := speech_request_problems(body) + _policy_problems(body):
            return self._violation(400, "; ".join(problems))
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            masked = f"{self.api_key[:3]}{'*' * 12}{self.api_key[-4:]}"
            return self._error(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")

        if (quirk := self._quirk(body)) is not None:
            return quirk
        body = self._clamped(body)
        fault = self._faults.pop(0) if self._faults else Fault()
        if fault.hang:
            await self._closing.wait()
            return web.Response(status=503)
        if not await self._pause(fault.first_byte_delay):
            return web.Response(status=503)
        if fault.status != 200:
            return self._fault_error(fault)
        if fault.body is not None:
            data, content_type = _encode_body(fault.body)
        elif fault.not_audio:
            data, content_type = error_body(ErrorShape.HTML, "Service temporarily unavailable")
        else:
            try:
                data, content_type = await self._voiced(body)
            except SpeechError as exc:  # e.g. text with no speakable words: a real server refuses it too
                return self._error(400, exc.user_message)
        headers = {}
        if body["response_format"] == "pcm" and fault.body is None and not fault.not_audio:
            data, headers, content_type = self._pcm_at_rate(data, content_type)
        if headers:
            fault = replace(fault, headers={**headers, **fault.headers})
        return await self._stream(request, data, fault.content_type or content_type, fault)

    async def _voiced(self, body: Mapping[str, Any]) -> tuple[bytes, str]:
        """The audio for ``body``; with ``distinct_voices``, at the pitch of its voice (the same text at 24 kHz
        replayed as if recorded at a voice's own rate: higher and shorter)."""
        if not self.quirks.distinct_voices:
            return await self._audio(body)
        from bot.audio.encode import encode_pcm
        from bot.audio.formats import AudioFormat

        pcm, _ = await self._audio({**body, "response_format": "pcm"})
        rate = 24_000 + 1_200 * (zlib.crc32(str(body["voice"]).encode()) % 7 + 1)
        fmt = body["response_format"]
        return await asyncio.to_thread(encode_pcm, pcm, rate, AudioFormat(fmt)), CONTENT_TYPES[fmt]

    def _voices(self, request: web.Request) -> web.Response:
        """``GET /v1/audio/voices``: the server's list in its shape, or OpenAI's 404 when it has none."""
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        if self.quirks.voice_list is None:
            return self._error(404, f"Invalid URL (GET {VOICES_PATH})")
        return web.json_response(self.quirks.voice_list)

    def _quirk(self, body: Mapping[str, Any]) -> web.Response | None:
        """A real server's refusal of a valid request (ServerQuirks), or None."""
        quirks = self.quirks
        if quirks.refused_speeds is not None and "speed" in body:
            low, high = quirks.refused_speeds
            if not low <= float(body["speed"]) <= high:
                return self._error(400, f"speed must be between {low} and {high}.", code="OPTION_INVALID")
        if quirks.fields is not None and (extra := sorted(set(body) - quirks.fields)):
            problems = [{"type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not permitted",
                         "input": body[name]} for name in extra]
            return web.json_response({"detail": problems}, status=422)
        fmt = body["response_format"]
        if quirks.formats is not None and fmt not in quirks.formats:
            message = (f"response_format '{fmt}' needs the ffmpeg binary on the server host, which was not found. "
                       f"Use 'wav' (default) or 'pcm', or install ffmpeg.")
            return self._error(400, message, code="unsupported_response_format")
        if quirks.voices is not None and body["voice"] not in quirks.voices:
            message = f"Voice '{body['voice']}' not found: it is not downloaded and downloads are turned off."
            return self._error(quirks.unknown_voice_status, message, code="voice_not_found", error_type="server_error")
        return None

    def _clamped(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.quirks.speeds is None or "speed" not in body:
            return body
        low, high = self.quirks.speeds
        return {**body, "speed": min(high, max(low, float(body["speed"])))}

    def _pcm_at_rate(self, data: bytes, content_type: str) -> tuple[bytes, dict[str, str], str]:
        """24 kHz pcm as a server whose voice is ``quirks.pcm_rate`` sends it, announced as configured."""
        rate = self.quirks.pcm_rate
        if rate == 24_000:
            return data, {}, content_type
        import av
        import numpy as np

        frame = av.AudioFrame.from_ndarray(np.frombuffer(data, dtype="<i2").reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = 24_000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        frames = resampler.resample(frame) + resampler.resample(None)
        out = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in frames)
        match self.quirks.pcm_rate_header:
            case "x-sample-rate":
                return out, {"X-Sample-Rate": str(rate)}, "audio/pcm_s16le"
            case "content-type":
                return out, {}, f"audio/pcm;rate={rate}"
        return out, {}, content_type

    def _models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``, as OpenAI answers it: what ``speechbot check`` uses to test the key."""
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        models = [{"id": "gpt-4o-mini-tts", "object": "model", "created": 0, "owned_by": "loopback"}]
        return web.json_response({"object": "list", "data": models})

    def _violation(self, status: int, message: str, *, code: str | None = None) -> web.Response:
        """The bot did something a strict server refuses: answer like OpenAI and fail the test."""
        self.failures.append(f"{status}: {message}")
        return self._error(status, message, code=code)

    def _error(
        self, status: int, message: str, *, code: str | None = None, error_type: str = "invalid_request_error"
    ) -> web.Response:
        data, content_type = error_body(ErrorShape.OPENAI, message, code=code, error_type=error_type)
        if problems := error_response_problems(json.loads(data)):
            self.failures.append(f"the double's own error body is outside ErrorResponse: {problems}")
        return web.Response(status=status, body=data, content_type=content_type)

    def _fault_error(self, fault: Fault) -> web.Response:
        error_type = fault.error_type or ("server_error" if fault.status >= 500 else "invalid_request_error")
        if fault.shape is ErrorShape.OPENAI and fault.body is None:
            response = self._error(fault.status, fault.message, code=fault.code, error_type=error_type)
        else:
            if fault.body is not None:
                data, content_type = _encode_body(fault.body)
            else:
                data, content_type = error_body(fault.shape, fault.message, code=fault.code, error_type=error_type)
            response = web.Response(status=fault.status, body=data)
            response.headers["Content-Type"] = fault.content_type or content_type
        response.headers.update(fault.headers)
        return response

    async def _stream(self, request: web.Request, data: bytes, content_type: str, fault: Fault) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type, **fault.headers})
        if fault.cut_after is None:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(data)  # promise it all, deliver part: the client must notice
            data = data[: fault.cut_after]
        sent = bytearray()
        try:
            await response.prepare(request)
            for index, piece in enumerate(_split(data, self._chunks)):
                if index and not await self._pause(fault.chunk_delay):
                    break
                await response.write(piece)
                sent += piece
            if fault.cut_after is None:
                await response.write_eof()
        except ConnectionError:
            pass  # the client gave up (a timeout under test); what it got is in ``served``
        finally:
            self.served.append(bytes(sent))
        if fault.cut_after is not None and request.transport is not None:
            request.transport.close()
        return response

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the endpoint closes first; True when the handler may carry on."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
        return not self._closing.is_set()


def _policy_problems(body: Mapping[str, Any]) -> list[str]:
    """What the schema allows but the bot must still never send."""
    problems = []
    if "response_format" not in body:
        problems.append("response_format is missing (servers default to different formats)")
    if "instructions" in body and body.get("model") in ("tts-1", "tts-1-hd"):
        problems.append(f"instructions are not supported by {body['model']}")
    return problems


def _encode_body(body: bytes | str | Mapping[str, Any]) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


def _split(data: bytes, parts: int) -> list[bytes]:
    """``data`` in up to ``parts`` nearly equal pieces, so the client sees several chunks."""
    size = max(1, -(-len(data) // parts))
    return [data[i : i + size] for i in range(0, len(data), size)]


_SPEECH_CACHE: dict[tuple[str, str, float], tuple[bytes, str]] = {}
_ENGINE_VOICE = "loopback"
_engine: Any = None


async def local_speech(body: Mapping[str, Any]) -> tuple[bytes, str]:
    """Real speech from the offline piper engine in the requested format.

    One engine serves the whole test session (loading the model takes ~0.4 s) and results are cached by what
    the audio depends on (text, format, speed: every voice and model speaks as piper's joe), so a suite that
    repeats a text synthesizes it once. A test that must not wait for synthesis on a busy machine calls this
    first with the request it is about to cause.
    """
    global _engine
    from bot.audio.formats import AudioFormat
    from bot.speech.local import LocalSpeechEngine
    from bot.speech.models import SpeechRequest, read_all

    key = (str(body["input"]), str(body["response_format"]), float(body.get("speed", 1.0)))
    if key not in _SPEECH_CACHE:
        if _engine is None:
            _engine = LocalSpeechEngine([_ENGINE_VOICE])
        request = SpeechRequest(
            text=body["input"],
            voice=_ENGINE_VOICE,
            format=AudioFormat(body["response_format"]),
            speed=float(body.get("speed", 1.0)),
        )
        audio = await read_all(await _engine.open(request))
        _SPEECH_CACHE[key] = (audio.data, CONTENT_TYPES[body["response_format"]])
    return _SPEECH_CACHE[key]


async def warm_up() -> None:
    """Load piper's model now, once per process, so that no request pays for it: in a parallel run any test can
    be a worker's first, and a first request that loaded the model could outlast a client's first-byte timeout
    on a loaded machine."""
    await local_speech({"input": "Warming up.", "response_format": "pcm"})
