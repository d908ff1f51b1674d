"""A strict loopback of OpenAI's Realtime API (GA): ``GET /v1/realtime?model=M`` upgraded to a WebSocket on
127.0.0.1, speaking real speech.

Strict where the bot must be correct. Every client event is validated against the ``openai`` SDK's types
(:mod:`tests.loopback.realtime_spec`: strict types, unknown fields refused as the real server refuses them)
and answered, when wrong, with the ``error`` event the real server sends; what the schema allows but the bot
must still never do (an ``OpenAI-Beta`` header, a speed outside 0.25-1.5, a voice change after the session
spoke, a response into the default conversation, text output, a format other than 24 kHz pcm) is refused the
same way. Each such violation lands in ``failures``, which the fixture turns into a test failure. Refusals the
tests provoke on purpose (a wrong key: HTTP 401 with OpenAI's JSON body; a voice the service does not offer;
an unknown model) are answered the same way without being violations.

Audio is real: the offline piper engine says the text (at the session's speed), sent as base64 24 kHz PCM16
deltas of ``delta_ms`` each, with the transcript in ``response.output_audio_transcript.delta`` events beside
them, in the GA event order, ending with ``response.done`` (with usage) and ``rate_limits.updated``. The
double's own events are checked against the SDK's server-event union too.

:class:`Fault` makes it misbehave like the service does: an HTTP error on the upgrade, a model that is gone
(``model_not_found``/``invalid_model`` then close 4000), a rate limit (``response.done`` failed with
``inference_rate_limit_exceeded`` after ``rate_limits.updated`` shows the limit exhausted), no credit,
a server error, a socket cut mid-response, an expired session (``session_expired`` then close 1001), a slow
first delta, a reworded transcript (and audio), a content-policy refusal, a response that never comes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from bot.speech.catalog import REALTIME_SPEEDS, REALTIME_VOICES
from tests.loopback.realtime_spec import Problem, client_event_problems, server_event_problems, warm_up_validation

REALTIME_PATH = "/v1/realtime"
MODELS_PATH = "/v1/models"
SAMPLE_RATE = 24_000

#: Models this double serves over the Realtime API, and known models that are not Realtime ones.
REALTIME_MODELS = frozenset({
    "gpt-realtime", "gpt-realtime-mini", "gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini",
    "gpt-realtime-1.5",
})
OTHER_MODELS = frozenset({"gpt-4o-mini-tts", "tts-1", "tts-1-hd", "gpt-4o", "gpt-4o-mini"})

#: The server's own default instructions (sent in ``session.created``, overridden per response).
SERVER_INSTRUCTIONS = "Your knowledge cutoff is 2024-10. You are a helpful, witty, and friendly AI."


class FaultKind(StrEnum):
    # at the upgrade (one connection each)
    UPGRADE_ERROR = "upgrade_error"  # HTTP ``status`` with OpenAI's JSON body instead of 101
    MODEL_NOT_FOUND = "model_not_found"  # error event, close 4000
    INVALID_MODEL = "invalid_model"  # error event, close 4000
    # at a response.create (one response each)
    RATE_LIMIT = "rate_limit"
    NO_CREDIT = "no_credit"
    SERVER_ERROR = "server_error"
    CLOSE_MID_RESPONSE = "close_mid_response"  # the TCP connection is cut after ``after_deltas`` deltas
    SESSION_EXPIRED = "session_expired"  # error session_expired, close 1001
    SLOW_FIRST_DELTA = "slow_first_delta"  # ``delay`` seconds before the first delta
    REWORDED = "reworded"  # the model says ``text`` instead of what it was given
    POLICY = "policy"  # response.done incomplete, content_filter
    HANG = "hang"  # response.created, then nothing


_CONNECTION_FAULTS = frozenset({FaultKind.UPGRADE_ERROR, FaultKind.MODEL_NOT_FOUND, FaultKind.INVALID_MODEL})


@dataclass(frozen=True)
class Fault:
    """One misbehaviour for the next ``times`` connections (upgrade faults) or responses (the others)."""

    kind: FaultKind
    times: int = 1
    status: int = 503  # UPGRADE_ERROR
    delay: float = 2.0  # SLOW_FIRST_DELTA
    after_deltas: int = 3  # CLOSE_MID_RESPONSE
    reset_seconds: float = 0.5  # RATE_LIMIT
    text: str = "Sure! Here is your text, read aloud with pleasure."  # REWORDED


@dataclass
class Connection:
    """One WebSocket session as the double saw it."""

    headers: Mapping[str, str]
    model: str
    opened_at: float
    events: list[dict[str, Any]] = field(default_factory=list)  # client events received (valid or not)
    voice: str = "alloy"
    speed: float = 1.0
    spoke: bool = False
    closed_with: int | None = None


@dataclass
class ServedResponse:
    """A response the double produced: what it was asked to read, with what, and what it sent."""

    connection: Connection
    text: str
    instructions: str | None
    voice: str
    speed: float
    fault: FaultKind | None
    fault_detail: Fault | None = None
    metadata: Any = None
    pcm: bytes = b""
    transcript: str = ""
    status: str = "in_progress"
    first_delta_at: float | None = None
    created_at: float = field(default_factory=time.monotonic)


class RealtimeEndpoint:
    """The double. ``await start()``, point the bot at ``base_url`` (``http://127.0.0.1:PORT/v1``), ``close()``.

    ``voices``: the voices it offers (fewer than the SDK lists, to make one unknown); ``first_delta_delay``:
    server-side time before the first audio of every response and ``session_delay`` before ``session.created``
    (benchmarks); ``delta_interval``: pause between deltas; ``session_max_age``: seconds before a session expires
    (60 minutes like the service, less in tests).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        voices: tuple[str, ...] = REALTIME_VOICES,
        delta_ms: int = 100,
        delta_interval: float = 0.002,
        first_delta_delay: float = 0.0,
        session_delay: float = 0.0,
        session_max_age: float = 3600.0,
        check_own_events: bool = True,
    ) -> None:
        self.api_key = api_key
        self.voices = voices
        self.delta_ms = delta_ms
        self.delta_interval = delta_interval
        self.first_delta_delay = first_delta_delay
        self.session_delay = session_delay
        self.check_own_events = check_own_events  # off only in benchmarks: it costs the double CPU per delta
        self.session_max_age = session_max_age
        self.connections: list[Connection] = []
        self.upgrades: list[Mapping[str, str]] = []  # every upgrade request's headers, refused ones included
        self.responses: list[ServedResponse] = []
        self.errors_sent: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- life cycle --

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        await warm_up()
        warm_up_validation()

    async def close(self) -> None:
        self._closing.set()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RealtimeEndpoint:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def inject(self, fault: Fault) -> None:
        self._faults.extend([fault] * fault.times)

    def clear_faults(self) -> None:
        self._faults.clear()

    async def cut_all(self) -> None:
        """Drop every open session at once, as a network failure would (no close frame)."""
        for ws in list(self._sockets):
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.close()

    @property
    def texts(self) -> list[str]:
        """What the bot asked to be read, in order."""
        return [response.text for response in self.responses]

    def _take(self, connection_level: bool) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if (fault.kind in _CONNECTION_FAULTS) == connection_level:
                return self._faults.pop(index)
        return None

    def _event_id(self) -> str:
        return f"event_{next(self._ids):06d}"

    # -- HTTP --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if (request.method, request.path) == ("GET", MODELS_PATH):
            return self._models(request)
        if request.path != REALTIME_PATH:
            return self._http_violation(404, f"Invalid URL ({request.method} {request.path})", "unknown_url")
        self.upgrades.append(dict(request.headers))
        if "OpenAI-Beta" in request.headers:
            return self._http_violation(
                400, "The OpenAI-Beta header selects the retired beta protocol; the GA API takes none.", None
            )
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._http_violation(400, "Expected a WebSocket upgrade.", None)
        model = request.query.get("model")
        if not model:
            return self._http_violation(400, "Missing required parameter: 'model'.", "missing_required_parameter")
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            masked = f"{self.api_key[:3]}{'*' * 12}{self.api_key[-4:]}"
            return _http_error(401, f"Incorrect API key provided: {masked}.", "invalid_api_key")
        fault = self._take(connection_level=True)
        if fault is not None and fault.kind is FaultKind.UPGRADE_ERROR:
            kind = "server_error" if fault.status >= 500 else "invalid_request_error"
            return _http_error(fault.status, "The server had an error while processing your request.", None, kind)

        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self._sockets.add(ws)
        connection = Connection(dict(request.headers), model, time.monotonic())
        self.connections.append(connection)
        try:
            await self._serve(ws, connection, fault)
        finally:
            self._sockets.discard(ws)
            if connection.closed_with is None:  # the code this side closed with, or the bot's
                connection.closed_with = ws.close_code
        return ws

    def _models(self, request: web.Request) -> web.Response:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _http_error(401, "Incorrect API key provided.", "invalid_api_key")
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in sorted(REALTIME_MODELS)]
        return web.json_response({"object": "list", "data": data})

    def _http_violation(self, status: int, message: str, code: str | None) -> web.Response:
        self.failures.append(f"HTTP {status}: {message}")
        return _http_error(status, message, code)

    # -- the WebSocket --

    async def _serve(self, ws: web.WebSocketResponse, connection: Connection, fault: Fault | None) -> None:
        gone = fault.kind if fault is not None else None
        if gone is None and connection.model not in REALTIME_MODELS:
            gone = FaultKind.INVALID_MODEL if connection.model in OTHER_MODELS else FaultKind.MODEL_NOT_FOUND
        if gone is not None:
            if gone is FaultKind.INVALID_MODEL:
                message = f"Model '{connection.model}' is not supported in realtime mode."
            else:
                message = f"The model '{connection.model}' does not exist or you do not have access to it."
            await self._error(ws, gone.value, message, None, None)
            connection.closed_with = 4000
            await ws.close(code=4000, message=b"invalid_model" if gone is FaultKind.INVALID_MODEL else b"")
            return
        if self.session_delay and not await self._pause(self.session_delay):
            return
        await self._send(ws, {"type": "session.created", "event_id": self._event_id(),
                              "session": self._session(connection)})
        expiry = asyncio.get_running_loop().call_later(
            self.session_max_age, lambda: asyncio.ensure_future(self._expire(ws, connection))
        )
        responses: set[asyncio.Task[None]] = set()
        active: dict[str, tuple[asyncio.Task[None], ServedResponse]] = {}
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    if message.type is WSMsgType.BINARY:
                        self.failures.append("a binary WebSocket message (events are JSON text)")
                    continue
                try:
                    event = json.loads(message.data)
                except ValueError:
                    self.failures.append("a client event that is not JSON")
                    await self._error(ws, "invalid_json", "The event is not valid JSON.", None, None)
                    continue
                connection.events.append(event)
                event_id = event.get("event_id") if isinstance(event, dict) else None
                problems = client_event_problems(event) or self._policy_problems(event, connection)
                if problems:
                    first = problems[0]
                    if not first.expected:
                        self.failures.append(f"{event.get('type') if isinstance(event, dict) else event}: {first}")
                    await self._error(ws, first.code, first.message, first.param, event_id)
                    continue
                kind = event["type"]
                if kind == "session.update":
                    self._apply(event["session"], connection)
                    await self._send(ws, {"type": "session.updated", "event_id": self._event_id(),
                                          "session": self._session(connection)})
                elif kind == "response.create":
                    served = self._respond_to(event, connection)
                    task = asyncio.create_task(self._produce(ws, served, event_id, active))
                    responses.add(task)
                    task.add_done_callback(responses.discard)
                elif kind == "response.cancel":
                    await self._cancel(ws, event, active)
                else:
                    self.failures.append(f"{kind}: the bot has no business sending this")
        finally:
            expiry.cancel()
            for task in responses:
                task.cancel()
            await asyncio.gather(*responses, return_exceptions=True)

    def _policy_problems(self, event: dict[str, Any], connection: Connection) -> list[Problem]:
        """What the schema allows but the real service refuses (``expected`` ones are not the bot's fault)."""
        kind = event["type"]
        if kind == "session.update":
            session = event["session"]
            problems: list[Problem] = []
            if session.get("type") != "realtime":
                problems.append(Problem("invalid_value", "Only realtime sessions are served here.", "session.type"))
            modalities = session.get("output_modalities")
            if modalities is not None and modalities != ["audio"]:
                problems.append(Problem("invalid_value", "The bot must ask for audio only.",
                                        "session.output_modalities"))
            output = (session.get("audio") or {}).get("output") or {}
            fmt = output.get("format")
            if fmt is not None and fmt != {"type": "audio/pcm", "rate": SAMPLE_RATE}:
                problems.append(Problem("invalid_value", f"The bot must ask for 24 kHz pcm, not {fmt}.",
                                        "session.audio.output.format"))
            speed = output.get("speed")
            if speed is not None and speed not in REALTIME_SPEEDS:
                problems.append(Problem("invalid_value", f"Invalid 'session.audio.output.speed': {speed}. Expected "
                                        "a value between 0.25 and 1.5.", "session.audio.output.speed"))
            if "voice" in output:
                voice = output["voice"]
                name = voice.get("id") if isinstance(voice, dict) else voice
                if connection.spoke and name != connection.voice:
                    problems.append(Problem("cannot_update_voice", "Cannot update a conversation's voice if "
                                            "assistant audio is present.", "session.audio.output.voice"))
                elif name not in self.voices and not (isinstance(voice, dict) and name):
                    # A voice of the SDK's list that this service does not offer is the tests' doing; any other
                    # name should never have left the bot.
                    problems.append(Problem(
                        "invalid_value",
                        f"Invalid value: '{str(name)[:40]}'. Supported values are: "
                        f"{', '.join(repr(v) for v in self.voices)}.",
                        "session.audio.output.voice",
                        expected=name in REALTIME_VOICES,
                    ))
            return problems
        if kind == "response.create":
            response = event.get("response") or {}
            problems = []
            if response.get("conversation") != "none":
                problems.append(Problem("invalid_value", "The bot reads out of band: conversation must be 'none'.",
                                        "response.conversation"))
            if response.get("output_modalities") not in (None, ["audio"]):
                problems.append(Problem("invalid_value", "Audio only.", "response.output_modalities"))
            if not _input_text(response):
                problems.append(Problem("missing_required_parameter", "The text to read must be one user message "
                                        "with input_text.", "response.input"))
            if "audio" in response:
                problems.append(Problem("invalid_value", "Voice and format belong to the session.", "response.audio"))
            if not response.get("instructions"):
                problems.append(Problem("missing_required_parameter", "Without instructions the model converses.",
                                        "response.instructions"))
            return problems
        return []

    def _apply(self, session: dict[str, Any], connection: Connection) -> None:
        output = (session.get("audio") or {}).get("output") or {}
        if "voice" in output:
            voice = output["voice"]
            connection.voice = voice["id"] if isinstance(voice, dict) else voice
        if "speed" in output:
            connection.speed = float(output["speed"])

    def _session(self, connection: Connection) -> dict[str, Any]:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": f"sess_{id(connection):x}",
            "expires_at": int(time.time() + self.session_max_age),
            "model": connection.model,
            "output_modalities": ["audio"],
            "instructions": SERVER_INSTRUCTIONS,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "turn_detection": None},
                "output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": connection.voice,
                           "speed": connection.speed},
            },
            "max_output_tokens": "inf",
            "tracing": None,
        }

    def _respond_to(self, event: dict[str, Any], connection: Connection) -> ServedResponse:
        response = event["response"]
        fault = self._take(connection_level=False)
        served = ServedResponse(connection, _input_text(response), response.get("instructions"), connection.voice,
                                connection.speed, fault.kind if fault is not None else None, fault,
                                response.get("metadata"))
        self.responses.append(served)
        return served

    async def _produce(
        self, ws: web.WebSocketResponse, served: ServedResponse, event_id: str | None,
        active: dict[str, tuple[asyncio.Task[None], ServedResponse]],
    ) -> None:
        fault, kind, metadata = served.fault_detail, served.fault, served.metadata
        if kind is FaultKind.SESSION_EXPIRED:
            await self._expire(ws, served.connection)
            return
        response_id = f"resp_{next(self._ids):06d}"
        item_id = f"item_{next(self._ids):06d}"
        current = asyncio.current_task()
        assert current is not None
        active[response_id] = (current, served)
        try:
            await self._send(ws, {"type": "response.created", "event_id": self._event_id(),
                                  "response": self._response(response_id, served, "in_progress", metadata)})
            if kind is FaultKind.HANG:
                await self._closing.wait()
                return
            exhausted = kind is FaultKind.RATE_LIMIT
            await self._send(ws, self._rate_limits(fault.reset_seconds if exhausted and fault else None))
            if kind in (FaultKind.RATE_LIMIT, FaultKind.NO_CREDIT, FaultKind.SERVER_ERROR):
                error = {
                    FaultKind.RATE_LIMIT: {"type": "rate_limit_exceeded", "code": "inference_rate_limit_exceeded",
                                           "message": "Rate limit reached for gpt-realtime in organization org-x on "
                                                      "requests per min (RPM): Limit 100, Used 100."},
                    FaultKind.NO_CREDIT: {"type": "insufficient_quota", "code": "insufficient_quota",
                                          "message": "You exceeded your current quota, please check your plan and "
                                                     "billing details."},
                    FaultKind.SERVER_ERROR: {"type": "server_error", "code": "server_error",
                                             "message": "The server had an error while processing your request."},
                }[kind]
                served.status = "failed"
                await self._send(ws, {"type": "response.done", "event_id": self._event_id(), "response": {
                    **self._response(response_id, served, "failed", metadata),
                    "status_details": {"type": "failed", "error": error}}})
                return
            if kind is FaultKind.POLICY:
                served.status = "incomplete"
                await self._send(ws, {"type": "response.done", "event_id": self._event_id(), "response": {
                    **self._response(response_id, served, "incomplete", metadata),
                    "status_details": {"type": "incomplete", "reason": "content_filter"}}})
                return
            served.transcript = fault.text if kind is FaultKind.REWORDED and fault is not None else served.text
            await self._stream(ws, served, response_id, item_id, metadata, fault)
        except asyncio.CancelledError:
            raise
        except ConnectionError:
            pass
        finally:
            active.pop(response_id, None)

    async def _stream(
        self, ws: web.WebSocketResponse, served: ServedResponse, response_id: str, item_id: str,
        metadata: Any, fault: Fault | None,
    ) -> None:
        base = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        await self._send(ws, {"type": "response.output_item.added", "event_id": self._event_id(),
                              "response_id": response_id, "output_index": 0,
                              "item": {"id": item_id, "object": "realtime.item", "type": "message",
                                       "role": "assistant", "status": "in_progress", "content": []}})
        await self._send(ws, {"type": "response.content_part.added", "event_id": self._event_id(), **base,
                              "part": {"type": "audio", "transcript": ""}})
        size = SAMPLE_RATE * 2 * self.delta_ms // 1000
        words = served.transcript.split(" ")
        # about 15 characters a second of speech: the transcript is spread over the deltas that many make
        expected = max(1, round(len(served.transcript) / 15 / (self.delta_ms / 1000)))
        per_delta = max(1, -(-len(words) // expected))
        delay = self.first_delta_delay + (fault.delay if served.fault is FaultKind.SLOW_FIRST_DELTA and fault else 0)
        if delay and not await self._pause(delay):
            return
        index, pending, pcm = 0, b"", bytearray()
        async with contextlib.aclosing(realtime_speech(served.transcript, served.speed)) as parts:
            async for part in parts:
                pending += part
                while len(pending) >= size:
                    chunk, pending = pending[:size], pending[size:]
                    share = words[index * per_delta : (index + 1) * per_delta]
                    if not await self._delta(ws, served, base, chunk, index, share, fault):
                        return
                    pcm += chunk
                    index += 1
        if pending:
            if not await self._delta(ws, served, base, pending, index, words[index * per_delta:], fault):
                return
            pcm += pending
            index += 1
        if rest := words[index * per_delta:]:
            await self._send(ws, {"type": "response.output_audio_transcript.delta", "event_id": self._event_id(),
                                  **base, "delta": " " + " ".join(rest)})
        served.pcm = bytes(pcm)
        transcript = served.transcript
        await self._send(ws, {"type": "response.output_audio.done", "event_id": self._event_id(), **base})
        await self._send(ws, {"type": "response.output_audio_transcript.done", "event_id": self._event_id(),
                              **base, "transcript": transcript})
        await self._send(ws, {"type": "response.content_part.done", "event_id": self._event_id(), **base,
                              "part": {"type": "audio", "transcript": transcript}})
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "completed", "content": [{"type": "output_audio", "transcript": transcript}]}
        await self._send(ws, {"type": "response.output_item.done", "event_id": self._event_id(),
                              "response_id": response_id, "output_index": 0, "item": item})
        served.status = "completed"
        audio_tokens = max(1, len(served.pcm) // (SAMPLE_RATE * 2 // 20))  # about 20 audio tokens a second
        text_tokens = max(1, len(transcript) // 4)
        await self._send(ws, {"type": "response.done", "event_id": self._event_id(), "response": {
            **self._response(response_id, served, "completed", metadata),
            "output": [item],
            "usage": {
                "total_tokens": 100 + audio_tokens + text_tokens,
                "input_tokens": 100,
                "output_tokens": audio_tokens + text_tokens,
                "input_token_details": {"text_tokens": 100, "audio_tokens": 0, "cached_tokens": 0,
                                        "image_tokens": 0},
                "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
            },
        }})
        await self._send(ws, self._rate_limits(None))

    async def _delta(
        self, ws: web.WebSocketResponse, served: ServedResponse, base: dict[str, Any], chunk: bytes, index: int,
        words: list[str], fault: Fault | None,
    ) -> bool:
        """One audio delta, after its share of the transcript; False when the response stops here (a cut)."""
        if served.fault is FaultKind.CLOSE_MID_RESPONSE and fault is not None and index == fault.after_deltas:
            served.status = "cut"
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.close()
            return False
        if words:
            await self._send(ws, {"type": "response.output_audio_transcript.delta", "event_id": self._event_id(),
                                  **base, "delta": (" " if index else "") + " ".join(words)})
        if index == 0:
            served.first_delta_at = time.monotonic()  # as it starts to go out
            served.connection.spoke = True
        await self._send(ws, {"type": "response.output_audio.delta", "event_id": self._event_id(), **base,
                              "delta": base64.b64encode(chunk).decode("ascii")})
        return not self.delta_interval or await self._pause(self.delta_interval)

    def _response(self, response_id: str, served: ServedResponse, status: str, metadata: Any) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "conversation_id": None,
            "output": [],
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "metadata": metadata,
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": served.voice}},
            "usage": None,
        }

    def _rate_limits(self, exhausted_for: float | None) -> dict[str, Any]:
        requests = {"name": "requests", "limit": 100, "remaining": 0 if exhausted_for is not None else 99,
                    "reset_seconds": exhausted_for if exhausted_for is not None else 0.6}
        tokens = {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.5}
        return {"type": "rate_limits.updated", "event_id": self._event_id(), "rate_limits": [requests, tokens]}

    async def _cancel(self, ws: web.WebSocketResponse, event: dict[str, Any],
                      active: dict[str, tuple[asyncio.Task[None], ServedResponse]]) -> None:
        response_id = event.get("response_id") or next(reversed(active), None)
        entry = active.pop(response_id, None) if response_id is not None else None
        if entry is None:
            await self._error(ws, "response_cancel_not_active", "Cancellation failed: no active response found.",
                              None, event.get("event_id"))
            return
        task, served = entry
        task.cancel()
        served.status = "cancelled"
        await self._send(ws, {"type": "response.done", "event_id": self._event_id(), "response": {
            **self._response(response_id, served, "cancelled", served.metadata),
            "status_details": {"type": "cancelled", "reason": "client_cancelled"}}})

    async def _expire(self, ws: web.WebSocketResponse, connection: Connection) -> None:
        if ws.closed:
            return
        connection.closed_with = 1001
        with contextlib.suppress(ConnectionError):
            await self._error(ws, "session_expired", "Your session hit the maximum duration of 60 minutes.",
                              None, None)
            await ws.close(code=1001, message=b"session expired")

    async def _error(
        self, ws: web.WebSocketResponse, code: str, message: str, param: str | None, event_id: str | None
    ) -> None:
        kind = {"session_expired": "invalid_request_error", "insufficient_quota": "insufficient_quota"}.get(
            code, "invalid_request_error")
        error = {"type": kind, "code": code, "message": message, "param": param, "event_id": event_id}
        self.errors_sent.append(error)
        await self._send(ws, {"type": "error", "event_id": self._event_id(), "error": error})

    async def _send(self, ws: web.WebSocketResponse, event: dict[str, Any]) -> None:
        if self.check_own_events and (problems := server_event_problems(event)):
            self.failures.append(f"the double's own {event['type']} is outside the SDK's types: {problems}")
        if ws.closed:
            raise ConnectionResetError("the bot closed the session")
        await ws.send_str(json.dumps(event))

    async def _pause(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        return not self._closing.is_set()


def _input_text(response: Mapping[str, Any]) -> str:
    """The text of the one user message with one ``input_text`` part, or "" when the input is not that."""
    items = response.get("input")
    if not isinstance(items, list) or len(items) != 1:
        return ""
    item = items[0]
    if not isinstance(item, dict) or item.get("type") != "message" or item.get("role") != "user":
        return ""
    parts = item.get("content")
    if not isinstance(parts, list) or len(parts) != 1 or parts[0].get("type") != "input_text":
        return ""
    return str(parts[0].get("text") or "")


def _http_error(status: int, message: str, code: str | None, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


_SPEECH: dict[tuple[str, float], bytes] = {}
_engine: Any = None


async def realtime_speech(text: str, speed: float) -> AsyncIterator[bytes]:
    """``text`` said by the offline piper engine at ``speed``, as 24 kHz s16le mono (the Realtime format), in
    parts as piper makes them (sentence by sentence), so a long text starts at once like the service's does.

    One engine for the whole test session; whole results are cached per text and speed.
    """
    global _engine
    from bot.audio.formats import AudioFormat
    from bot.speech.local import LocalSpeechEngine
    from bot.speech.models import SpeechRequest

    key = (text, speed)
    if key in _SPEECH:
        yield _SPEECH[key]
        return
    if _engine is None:
        _engine = LocalSpeechEngine(["loopback"])
    stream = await _engine.open(SpeechRequest(text=text, voice="loopback", format=AudioFormat.PCM, speed=speed))
    parts = []
    try:
        async for part in stream:
            parts.append(part)
            yield part
    finally:
        await stream.aclose()
    _SPEECH[key] = b"".join(parts)


async def warm_up() -> None:
    """Load piper's model now, once per process (see ``speech_server.warm_up``)."""
    async with contextlib.aclosing(realtime_speech("Warming up.", 1.0)) as parts:
        async for _ in parts:
            pass
