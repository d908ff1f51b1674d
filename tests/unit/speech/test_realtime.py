"""The Realtime engine against the strict loopback Realtime API, over real sockets: formats, streaming, warm
sessions and their voices, every fault, and what reaches the caller (bytes, words, typed errors)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from bot.audio.formats import AudioFormat, sniff
from bot.speech.client import Timeouts
from bot.speech.errors import (
    SpeechAuthError,
    SpeechConnectionError,
    SpeechError,
    SpeechRateLimitError,
    SpeechRejectedError,
    SpeechRewordedError,
    SpeechServiceError,
    SpeechTimeoutError,
    SpeechValidationError,
)
from bot.speech.models import SpeechRequest, read_all, synthesize
from bot.speech.realtime import MAX_PIECE_CHARS, RealtimeSpeechEngine
from bot.speech.retry import RetryPolicy
from tests.loopback.realtime_fixtures import REALTIME_MODEL
from tests.loopback.realtime_server import Fault, FaultKind, RealtimeEndpoint
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.support.audio_check import recognize_audio

pytestmark = pytest.mark.slow  # the Realtime double speaks real speech (piper), recognized by pocketsphinx

PHRASES = ["hello world", "good morning everyone", "please join the voice channel", "thank you for listening"]
VOICES = ("alloy", "marin", "cedar")


@dataclass
class Recorder:
    """The engine's observer seam, recording what it reports."""

    tokens: list[tuple[int, int, int]] = field(default_factory=list)
    checks: list[tuple[float, bool]] = field(default_factory=list)

    def tokens_used(self, backend: str, input_tokens: int, output_tokens: int, output_audio_tokens: int) -> None:
        self.tokens.append((input_tokens, output_tokens, output_audio_tokens))

    def transcript_checked(self, backend: str, deviation: float, rejected: bool) -> None:
        self.checks.append((deviation, rejected))

    def failed_over(self, engine: str, reason: str) -> None:
        raise AssertionError("the engine never fails over by itself")


Factory = Callable[..., RealtimeSpeechEngine]


@pytest.fixture
async def make_engine(realtime_endpoint: RealtimeEndpoint) -> AsyncIterator[Factory]:
    engines: list[RealtimeSpeechEngine] = []
    async with aiohttp.ClientSession() as http:

        def make(endpoint: RealtimeEndpoint = realtime_endpoint, **options: object) -> RealtimeSpeechEngine:
            settings: dict[str, object] = {
                "base_url": endpoint.base_url, "api_key": SPEECH_TEST_KEY, "model": REALTIME_MODEL,
                "voices": VOICES, "default_voice": "alloy",
                # generous: the double synthesizes with piper, seconds on a busy machine; the tests of timeouts
                # pass their own
                "timeouts": Timeouts(connect=5, first_byte=5, between_chunks=5),
                "policy": RetryPolicy(max_attempts=3, max_total=10, base_delay=0.05),
                "observer": Recorder(),
                **options,
            }
            engine = RealtimeSpeechEngine(http, **settings)  # type: ignore[arg-type]
            engines.append(engine)
            return engine

        yield make
        for engine in engines:
            await engine.close()


async def started(engine: RealtimeSpeechEngine, endpoint: RealtimeEndpoint) -> RealtimeSpeechEngine:
    """The engine with its spare session open (as a running bot has it)."""
    await engine.start()
    await wait_for(lambda: engine.pool.idle_sessions >= 1, "the spare session, connected and set up")
    return engine


async def wait_for(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def request(text: str = "Hello world.", voice: str = "alloy", fmt: AudioFormat = AudioFormat.OPUS,
            speed: float = 1.0, instructions: str | None = None) -> SpeechRequest:
    return SpeechRequest(text=text, voice=voice, format=fmt, speed=speed, instructions=instructions)


def sent(endpoint: RealtimeEndpoint, kind: str) -> list[dict]:
    return [event for connection in endpoint.connections for event in connection.events if event["type"] == kind]


@pytest.mark.parametrize("fmt", ["opus", "wav", "flac", "aac", "pcm"])
async def test_every_format_is_made_from_the_deltas_and_says_the_words(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint, fmt: str
) -> None:
    engine = await started(make_engine(), realtime_endpoint)
    audio = await read_all(await engine.open(request("Good morning everyone.", "marin", AudioFormat(fmt), 1.25)))
    [served] = realtime_endpoint.responses
    assert (served.text, served.voice, served.speed) == ("Good morning everyone.", "marin", 1.25)
    if fmt == "pcm":
        assert audio.data == served.pcm  # passed through, byte for byte
    else:
        assert sniff(audio.data[:12]) is AudioFormat(fmt)
    assert recognize_audio(audio.data, AudioFormat(fmt), PHRASES) == "good morning everyone"


async def test_open_returns_with_the_first_delta_while_the_service_is_still_sending(
    make_engine: Factory,
) -> None:
    async with RealtimeEndpoint(api_key=SPEECH_TEST_KEY, delta_interval=0.05) as slow:
        engine = await started(make_engine(slow), slow)
        stream = await engine.open(request("Please join the voice channel. Thank you for listening."))
        assert slow.responses[0].status == "in_progress"  # the rest is still on its way
        chunks = [chunk async for chunk in stream]
        assert len(chunks) > 3 and slow.responses[0].status == "completed"


async def test_a_warm_session_serves_again_and_its_voice_is_never_changed_after_it_spoke(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    engine = await started(make_engine(), realtime_endpoint)
    for voice, speed in [("alloy", 1.0), ("alloy", 1.0), ("marin", 1.0), ("alloy", 1.5), ("marin", 0.5)]:
        await read_all(await engine.open(request("Hello world.", voice, speed=speed)))
    served = realtime_endpoint.responses
    assert [(r.voice, r.speed) for r in served] == [("alloy", 1.0), ("alloy", 1.0), ("marin", 1.0), ("alloy", 1.5),
                                                     ("marin", 0.5)]
    # the spare served alloy, a new spare took marin: two sessions did everything (plus the spare now waiting)
    by_connection = {id(r.connection) for r in served}
    assert len(by_connection) == 2 and len(realtime_endpoint.connections) == 3
    alloy = served[0].connection
    assert all(r.connection is alloy for r in served if r.voice == "alloy")
    # after alloy spoke, its session was only told a new speed
    updates = [e["session"]["audio"]["output"] for e in alloy.events if e["type"] == "session.update"]
    assert updates == [{"format": {"type": "audio/pcm", "rate": 24000}, "speed": 1.0, "voice": "alloy"},
                       {"format": {"type": "audio/pcm", "rate": 24000}, "speed": 1.5}]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"speed": 1.6}, "between 0.25 and 1.5"), ({"speed": 0.2}, "between 0.25 and 1.5"),
     ({"voice": "nova"}, "Unknown voice 'nova'"), ({"text": "  "}, "nothing to say")],
)
async def test_what_the_engine_cannot_do_is_refused_before_anything_is_sent(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint, options: dict[str, object], message: str
) -> None:
    engine = make_engine()
    with pytest.raises(SpeechValidationError) as info:
        await engine.open(request(**options))  # type: ignore[arg-type]
    assert message in info.value.user_message
    assert realtime_endpoint.connections == [] and realtime_endpoint.responses == []


async def test_a_voice_the_service_does_not_offer_is_named_and_the_session_serves_on(make_engine: Factory) -> None:
    async with RealtimeEndpoint(api_key=SPEECH_TEST_KEY, voices=("alloy", "marin")) as endpoint:
        engine = await started(make_engine(endpoint), endpoint)
        with pytest.raises(SpeechRejectedError) as info:
            await engine.open(request(voice="cedar"))
        assert "does not offer the voice 'cedar'" in info.value.user_message
        assert len(endpoint.connections) == 1 and endpoint.responses == []
        audio = await read_all(await engine.open(request("Hello world.", "marin")))
        assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "hello world"
        assert endpoint.responses[0].connection is endpoint.connections[0]  # the refusal left it usable
        assert endpoint.failures == []


async def test_style_instructions_follow_the_reader_instructions(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    engine = await started(make_engine(), realtime_endpoint)
    await read_all(await engine.open(request(instructions="whisper, slowly")))
    [served] = realtime_endpoint.responses
    assert served.instructions is not None and "exactly as written" in served.instructions
    assert served.instructions.endswith("whisper, slowly") and served.text == "Hello world."


async def test_a_long_text_is_read_in_pieces_on_one_session_that_say_it_all(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    engine = await started(make_engine(), realtime_endpoint)
    text = " ".join(["Thank you for listening."] * 40)
    assert len(text) > MAX_PIECE_CHARS
    audio = await read_all(await engine.open(request(text, fmt=AudioFormat.PCM)))
    served = realtime_endpoint.responses
    assert len(served) == 2 and " ".join(r.text for r in served) == text
    assert all(len(r.text) <= MAX_PIECE_CHARS and r.text.endswith(".") for r in served)
    assert audio.data == b"".join(r.pcm for r in served)
    assert len({id(r.connection) for r in served}) == 1


async def test_usage_and_transcript_checks_are_reported(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    recorder = Recorder()
    engine = await started(make_engine(observer=recorder), realtime_endpoint)
    await read_all(await engine.open(request("Good morning everyone.")))
    [(input_tokens, output_tokens, audio_tokens)] = recorder.tokens
    assert input_tokens == 100 and output_tokens > audio_tokens > 0
    assert recorder.checks == [(0.0, False)]


async def test_a_rate_limit_is_waited_out_for_its_announced_reset(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:  # records the wait instead of spending it
        waits.append(delay)

    engine = await started(make_engine(sleep=sleep), realtime_endpoint)
    realtime_endpoint.inject(Fault(FaultKind.RATE_LIMIT, reset_seconds=0.4))
    audio = await read_all(await engine.open(request()))
    assert len(waits) == 1 and waits[0] >= 0.4  # one retry, after the announced reset
    assert [r.status for r in realtime_endpoint.responses] == ["failed", "completed"]
    assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "hello world"


@pytest.mark.parametrize(
    ("fault", "kind", "message", "responses"),
    [
        (Fault(FaultKind.RATE_LIMIT, times=3, reset_seconds=0.05), SpeechRateLimitError, "busy", 3),
        (Fault(FaultKind.NO_CREDIT), SpeechRateLimitError, "out of credit", 1),
        (Fault(FaultKind.SERVER_ERROR, times=3), SpeechServiceError, "having problems", 3),
        (Fault(FaultKind.POLICY), SpeechRejectedError, "content policy", 1),
        (Fault(FaultKind.SLOW_FIRST_DELTA, delay=5, times=3), SpeechTimeoutError, "took too long", 3),
        (Fault(FaultKind.HANG, times=3), SpeechTimeoutError, "took too long", 3),
        (Fault(FaultKind.UPGRADE_ERROR, status=503, times=3), SpeechServiceError, "having problems", 0),
        (Fault(FaultKind.MODEL_NOT_FOUND), SpeechRejectedError, "SPEECH_MODEL", 0),
        (Fault(FaultKind.INVALID_MODEL), SpeechRejectedError, "Realtime model", 0),
    ],
)
async def test_each_failure_is_a_typed_error_after_bounded_retries(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint, fault: Fault, kind: type[SpeechError],
    message: str, responses: int,
) -> None:
    engine = make_engine(timeouts=Timeouts(connect=2, first_byte=0.5, between_chunks=0.5))  # no spare: cold
    realtime_endpoint.inject(fault)
    with pytest.raises(SpeechError) as info:
        await engine.open(request())
    assert type(info.value) is kind and message in info.value.user_message
    assert SPEECH_TEST_KEY not in repr(info.value) + (info.value.detail or "")
    assert len(realtime_endpoint.responses) == responses
    realtime_endpoint.clear_faults()
    audio = await read_all(await engine.open(request()))  # and the next request works
    assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "hello world"


async def test_a_wrong_key_is_refused_on_the_upgrade_and_not_retried(make_engine: Factory) -> None:
    async with RealtimeEndpoint(api_key="sk-other-key-000") as endpoint:
        engine = make_engine(endpoint)
        with pytest.raises(SpeechAuthError) as info:
            await engine.open(request())
        assert "API key" in info.value.user_message and info.value.status == 401
        assert len(endpoint.upgrades) == 1 and endpoint.connections == []
        assert "OpenAI-Beta" not in endpoint.upgrades[0]
        assert endpoint.upgrades[0]["Authorization"] == f"Bearer {SPEECH_TEST_KEY}"


@pytest.mark.parametrize("fault", [Fault(FaultKind.SESSION_EXPIRED), Fault(FaultKind.SERVER_ERROR),
                                   Fault(FaultKind.UPGRADE_ERROR, status=500),
                                   Fault(FaultKind.SLOW_FIRST_DELTA, delay=0.3)])
async def test_failures_before_the_first_audio_are_retried_out_of_sight(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint, fault: Fault
) -> None:
    engine = await started(make_engine(), realtime_endpoint)
    realtime_endpoint.inject(fault)
    audio = await read_all(await engine.open(request("Thank you for listening.")))
    assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "thank you for listening"


async def test_an_idle_session_that_expired_is_replaced(make_engine: Factory) -> None:
    async with RealtimeEndpoint(api_key=SPEECH_TEST_KEY, session_max_age=0.5) as endpoint:
        engine = await started(make_engine(endpoint), endpoint)
        await read_all(await engine.open(request()))
        await wait_for(lambda: all(c.closed_with == 1001 for c in endpoint.connections), "the sessions to expire")
        audio = await read_all(await engine.open(request("Good morning everyone.")))
        assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "good morning everyone"
        assert endpoint.responses[-1].connection.closed_with is None  # a fresh one


async def test_a_socket_cut_mid_response_ends_the_stream_with_an_error_not_quietly(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    engine = await started(make_engine(), realtime_endpoint)
    realtime_endpoint.inject(Fault(FaultKind.CLOSE_MID_RESPONSE, after_deltas=3))
    stream = await engine.open(request("Please join the voice channel. Thank you for listening."))
    received = []
    with pytest.raises(SpeechConnectionError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert "stopped sending audio before the end" in info.value.user_message
    await stream.aclose()
    assert received and realtime_endpoint.responses[0].status == "cut"
    audio = await read_all(await engine.open(request()))  # a new session serves the next one
    assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "hello world"


async def test_a_reworded_reading_is_refused_and_a_whole_file_is_asked_for_once_more(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    recorder = Recorder()
    engine = await started(make_engine(observer=recorder), realtime_endpoint)
    realtime_endpoint.inject(Fault(FaultKind.REWORDED))
    with pytest.raises(SpeechRewordedError):
        await read_all(await engine.open(request("Good morning everyone.")))
    realtime_endpoint.inject(Fault(FaultKind.REWORDED))
    audio = await synthesize(engine, request("Good morning everyone."))
    assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "good morning everyone"
    assert [rejected for _, rejected in recorder.checks] == [True, True, False]
    realtime_endpoint.inject(Fault(FaultKind.REWORDED, times=2))
    with pytest.raises(SpeechRewordedError) as info:
        await synthesize(engine, request("Good morning everyone."))
    assert "said something other than the text" in info.value.user_message


async def test_closing_a_stream_early_cancels_the_response_and_the_session_serves_again(make_engine: Factory) -> None:
    async with RealtimeEndpoint(api_key=SPEECH_TEST_KEY, delta_interval=0.05) as endpoint:
        engine = await started(make_engine(endpoint), endpoint)
        stream = await engine.open(request("Please join the voice channel. Thank you for listening."))
        async for _ in stream:
            break
        await stream.aclose()
        await wait_for(lambda: endpoint.responses[0].status == "cancelled", "the response to be cancelled")
        [cancel] = sent(endpoint, "response.cancel")
        assert cancel["response_id"].startswith("resp_")
        # settled: the session back from its cancelled response, and the spare opened in its place meanwhile
        await wait_for(lambda: engine.pool.idle_sessions == engine.pool.open_sessions == 2, "the pool to settle")
        connections = len(endpoint.connections)
        audio = await read_all(await engine.open(request()))
        assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "hello world"
        assert len(endpoint.connections) == connections
        assert endpoint.responses[1].connection is endpoint.responses[0].connection


async def test_at_most_max_sessions_are_open_and_requests_beyond_wait_their_turn(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    engine = await started(make_engine(max_sessions=1), realtime_endpoint)
    texts = ["Hello world.", "Good morning everyone.", "Thank you for listening."]

    async def say(text: str) -> bytes:
        return (await read_all(await engine.open(request(text, fmt=AudioFormat.WAV)))).data

    results = await asyncio.gather(*(say(text) for text in texts))
    assert [recognize_audio(data, AudioFormat.WAV, PHRASES) for data in results] == [t.lower()[:-1] for t in texts]
    assert len(realtime_endpoint.connections) == 1


async def test_sessions_are_retired_before_the_services_60_minute_limit(
    make_engine: Factory, realtime_endpoint: RealtimeEndpoint
) -> None:
    now = [1000.0]
    engine = await started(make_engine(clock=lambda: now[0]), realtime_endpoint)
    await read_all(await engine.open(request()))
    first = realtime_endpoint.responses[0].connection
    now[0] += 50 * 60  # 50 minutes on: still served warm
    await read_all(await engine.open(request()))
    assert realtime_endpoint.responses[1].connection is first
    now[0] += 6 * 60  # 56 minutes: too close to the limit for a new response
    await read_all(await engine.open(request()))
    assert realtime_endpoint.responses[2].connection is not first
    await wait_for(lambda: first.closed_with is not None, "the old session to be closed")


async def test_a_request_cancelled_before_its_first_audio_gives_its_session_back(make_engine: Factory) -> None:
    async with RealtimeEndpoint(api_key=SPEECH_TEST_KEY, first_delta_delay=1.0) as endpoint:
        engine = await started(make_engine(endpoint, max_sessions=1, timeouts=Timeouts(2, 10, 10)), endpoint)
        opening = asyncio.create_task(engine.open(request()))
        await wait_for(lambda: endpoint.responses, "the response to start")
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        await wait_for(lambda: endpoint.responses[0].status == "cancelled", "the response to be cancelled")
        audio = await read_all(await engine.open(request("Good morning everyone.")))  # the only session serves
        assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "good morning everyone"
        assert len(endpoint.connections) == 1


async def test_deltas_split_mid_sample_and_batched_lose_nothing() -> None:
    from bot.speech.realtime import _Encoder

    pcm = bytes(range(256)) * 800  # 204,800 bytes: past the first second, then in batches
    encoder = _Encoder(AudioFormat.PCM)
    out = [encoder.feed(pcm[i : i + 4801]) for i in range(0, len(pcm), 4801)]  # odd-sized deltas
    out.append(await encoder.finish())
    assert b"".join(out) == pcm and all(len(part) % 2 == 0 for part in out)
    assert out[0] == pcm[:4800]  # the start goes out at once


async def test_a_cancel_the_service_ignores_costs_the_session_not_the_slot(
    make_engine: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.speech.realtime_session as session_module

    monkeypatch.setattr(session_module, "_ABANDON_TIMEOUT", 0.3)

    class Deaf(RealtimeEndpoint):
        async def _cancel(self, ws: object, event: object, active: object) -> None:
            return None  # the response goes on, and never ends while the test watches

    async with Deaf(api_key=SPEECH_TEST_KEY, delta_interval=0.5) as endpoint:
        engine = await started(make_engine(endpoint, max_sessions=1, timeouts=Timeouts(2, 5, 5)), endpoint)
        stream = await engine.open(request("Please join the voice channel. Thank you for listening."))
        async for _ in stream:
            break
        await stream.aclose()
        first = endpoint.responses[0].connection
        await wait_for(lambda: first.closed_with is not None, "the stuck session to be closed")
        endpoint.delta_interval = 0.002
        audio = await read_all(await engine.open(request("Good morning everyone.")))  # the one slot is free again
        assert recognize_audio(audio.data, AudioFormat.OPUS, PHRASES) == "good morning everyone"
        assert endpoint.responses[1].connection is not first
