"""The OpenAI speech client against the strict loopback endpoint, over real sockets.

Every request goes through the double's spec validation, so the fixture's empty ``failures`` proves each body
the client sent was a valid ``CreateSpeechRequest``. Retry delays are observed through an injected clock.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat
from bot.config import Secret
from bot.speech.client import MSG_CUT, MSG_EMPTY, MSG_NOT_AUDIO, MSG_UNREACHABLE, OpenAISpeechClient, Timeouts
from bot.speech.error_parsing import MSG_SERVER, MSG_TIMEOUT
from bot.speech.errors import (
    SpeechConnectionError,
    SpeechError,
    SpeechRateLimitError,
    SpeechServiceError,
    SpeechTimeoutError,
    SpeechValidationError,
)
from bot.speech.models import SpeechRequest
from bot.speech.retry import RetryPolicy
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import ErrorShape, Fault, SpeechEndpoint, local_speech

VOICES = ("alloy", "coral", "marin")
HELLO = SpeechRequest(text="hello world", voice="alloy", format=AudioFormat.OPUS)


class FakeTime:
    """A clock that only moves when the client sleeps, recording every delay it asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_client(
    session: aiohttp.ClientSession,
    fake_time: FakeTime,
    base_url: str,
    *,
    api_key: Any = SPEECH_TEST_KEY,
    model: str = "gpt-4o-mini-tts",
    policy: RetryPolicy = RetryPolicy(),
    timeouts: Timeouts = Timeouts(connect=1.0, first_byte=2.0, between_chunks=2.0),
) -> OpenAISpeechClient:
    return OpenAISpeechClient(
        session,
        base_url=base_url,
        api_key=api_key,
        model=model,
        voices=VOICES,
        policy=policy,
        timeouts=timeouts,
        sleep=fake_time.sleep,
        clock=fake_time.monotonic,
    )


@pytest.fixture
def client(session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint) -> OpenAISpeechClient:
    return make_client(session, fake_time, speech_endpoint.base_url)


async def read_chunks(client: OpenAISpeechClient, request: SpeechRequest = HELLO) -> tuple[AudioFormat, list[bytes]]:
    stream = await client.open(request)
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    return stream.format, chunks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the happy path ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", REQUESTABLE_FORMATS)
async def test_streams_real_speech_in_each_format(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fmt: AudioFormat
) -> None:
    found, chunks = await read_chunks(client, SpeechRequest(text="hello world", voice="alloy", format=fmt))

    assert found is fmt
    assert b"".join(chunks) == speech_endpoint.served[-1]
    [sent] = speech_endpoint.requests
    assert sent.json == {"model": "gpt-4o-mini-tts", "input": "hello world", "voice": "alloy", "response_format": fmt}


async def test_sends_bearer_key_and_asks_for_octet_stream(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint
) -> None:
    await read_chunks(client)

    [sent] = speech_endpoint.requests
    assert sent.method == "POST" and sent.path == "/v1/audio/speech"
    assert sent.headers["Authorization"] == f"Bearer {SPEECH_TEST_KEY}"
    assert sent.headers["Accept"] == "application/octet-stream"
    assert sent.headers["Content-Type"] == "application/json"


async def test_accepts_a_secret_object_and_a_trailing_slash(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url + "/", api_key=Secret(SPEECH_TEST_KEY))

    found, _ = await read_chunks(client)

    assert found is AudioFormat.OPUS
    assert speech_endpoint.requests[0].headers["Authorization"] == f"Bearer {SPEECH_TEST_KEY}"
    assert SPEECH_TEST_KEY not in repr(client)


async def test_sends_no_authorization_without_a_key(session: aiohttp.ClientSession, fake_time: FakeTime) -> None:
    async with SpeechEndpoint(api_key=None) as endpoint:
        await read_chunks(make_client(session, fake_time, endpoint.base_url, api_key=None))

    assert "Authorization" not in endpoint.requests[0].headers
    assert endpoint.failures == []


@pytest.mark.parametrize(
    ("model", "speed", "instructions", "extra"),
    [
        ("gpt-4o-mini-tts", 1.0, None, {}),
        ("gpt-4o-mini-tts", 1.5, None, {"speed": 1.5}),
        ("gpt-4o-mini-tts", 1.0, "Speak cheerfully.", {"instructions": "Speak cheerfully."}),
        ("tts-1", 0.5, "Speak cheerfully.", {"speed": 0.5}),
        ("tts-1-hd", 1.0, "Speak cheerfully.", {}),
    ],
)
async def test_request_body_holds_only_what_the_model_accepts(
    session: aiohttp.ClientSession,
    fake_time: FakeTime,
    speech_endpoint: SpeechEndpoint,
    model: str,
    speed: float,
    instructions: str | None,
    extra: dict[str, Any],
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, model=model)
    request = SpeechRequest(text="  hello world ", voice="coral", format=AudioFormat.WAV, speed=speed,
                            instructions=instructions)

    await read_chunks(client, request)

    expected = {"model": model, "input": "hello world", "voice": "coral", "response_format": "wav", **extra}
    assert speech_endpoint.requests[0].json == expected


@pytest.mark.parametrize(
    "request_",
    [
        SpeechRequest(text="   ", voice="alloy"),
        SpeechRequest(text="x" * 4097, voice="alloy"),
        SpeechRequest(text="hello", voice="ballad"),
        SpeechRequest(text="hello", voice="alloy", speed=4.5),
        SpeechRequest(text="hello", voice="alloy", format=AudioFormat.MP3),
    ],
    ids=["empty", "too-long", "unknown-voice", "too-fast", "mp3"],
)
async def test_invalid_requests_are_refused_before_sending(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, request_: SpeechRequest
) -> None:
    with pytest.raises(SpeechValidationError):
        await client.open(request_)

    assert speech_endpoint.requests == []


async def test_close_leaves_the_shared_session_open(client: OpenAISpeechClient, session: aiohttp.ClientSession) -> None:
    await client.close()

    assert not session.closed
    assert (await read_chunks(client))[0] is AudioFormat.OPUS


async def test_closing_a_stream_early_leaves_the_client_usable(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint
) -> None:
    stream = await client.open(HELLO)
    async for _ in stream:
        break
    await stream.aclose()

    _, chunks = await read_chunks(client)
    assert b"".join(chunks) == speech_endpoint.served[-1]


@pytest.mark.parametrize(("fmt", "content_type"), [("opus", "audio/opus"), ("wav", "audio/wav"), ("pcm", "audio/pcm")])
async def test_the_double_serves_chunked_audio_with_a_realistic_type(
    session: aiohttp.ClientSession, speech_endpoint: SpeechEndpoint, fmt: str, content_type: str
) -> None:
    body = {"model": "tts-1", "input": "hello world", "voice": "alloy", "response_format": fmt}
    headers = {"Authorization": f"Bearer {SPEECH_TEST_KEY}"}

    async with session.post(speech_endpoint.base_url + "/audio/speech", json=body, headers=headers) as response:
        data = await response.read()

    assert response.status == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Type"] == content_type
    assert data == speech_endpoint.served[-1] and len(data) > 1000


# --- sniffing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "audio/mpeg", "application/json"])
async def test_format_comes_from_the_bytes_not_the_content_type(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, content_type: str
) -> None:
    speech_endpoint.inject(Fault(content_type=content_type))

    found, chunks = await read_chunks(client)

    assert found is AudioFormat.OPUS
    assert b"".join(chunks) == speech_endpoint.served[-1]


async def test_reports_the_format_actually_sent(client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint) -> None:
    """Orpheus-FastAPI answers WAV whatever was asked."""
    wav, _ = await local_speech({"input": "hello world", "voice": "alloy", "response_format": "wav"})
    speech_endpoint.inject(Fault(body=wav, content_type="audio/opus"))

    found, chunks = await read_chunks(client)

    assert found is AudioFormat.WAV
    assert b"".join(chunks) == wav


async def test_headerless_pcm_is_accepted_when_pcm_was_asked(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint
) -> None:
    samples = bytes([0x10, 0x00, 0xF0, 0xFF]) * 500
    speech_endpoint.inject(Fault(body=samples))

    found, chunks = await read_chunks(client, SpeechRequest(text="hello world", voice="alloy", format=AudioFormat.PCM))

    assert found is AudioFormat.PCM
    assert b"".join(chunks) == samples


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        (AudioFormat.OPUS, b'{"error": {"message": "quota", "type": "x", "param": null, "code": null}}'),
        (AudioFormat.OPUS, b"<!DOCTYPE html><html><body>Login required</body></html>"),
        (AudioFormat.WAV, b"Service temporarily unavailable, please retry"),
        (AudioFormat.OPUS, bytes([0x10, 0x00, 0xF0, 0xFF]) * 500),
        (AudioFormat.PCM, b'{"detail": "Missing input text"}'),
        (AudioFormat.PCM, b"upstream connect error or disconnect/reset before headers"),
    ],
    ids=["json", "html", "text", "unknown-bytes", "json-for-pcm", "text-for-pcm"],
)
async def test_a_200_that_is_not_audio_is_an_error(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fmt: AudioFormat, body: bytes
) -> None:
    speech_endpoint.inject(Fault(body=body))

    with pytest.raises(SpeechServiceError) as caught:
        await client.open(SpeechRequest(text="hello world", voice="alloy", format=fmt))

    assert caught.value.user_message == MSG_NOT_AUDIO
    assert not caught.value.retryable
    assert len(speech_endpoint.requests) == 1


async def test_a_proxy_page_instead_of_audio_is_an_error(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint
) -> None:
    speech_endpoint.inject(Fault(not_audio=True, content_type="audio/ogg"))

    with pytest.raises(SpeechServiceError) as caught:
        await client.open(HELLO)

    assert caught.value.user_message == MSG_NOT_AUDIO


async def test_an_empty_200_is_an_error(client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint) -> None:
    speech_endpoint.inject(Fault(body=b""))

    with pytest.raises(SpeechServiceError) as caught:
        await client.open(HELLO)

    assert caught.value.user_message == MSG_EMPTY


# --- broken streams (never retried: the caller already has audio) -----------------------------------------


async def test_a_cut_stream_raises_instead_of_ending_short(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime
) -> None:
    speech_endpoint.inject(Fault(cut_after=3000))
    stream = await client.open(SpeechRequest(text="hello world", voice="alloy", format=AudioFormat.WAV))
    received = bytearray()

    with pytest.raises(SpeechConnectionError) as caught:
        async for chunk in stream:
            received += chunk

    assert caught.value.user_message == MSG_CUT
    assert bytes(received) == speech_endpoint.served[-1] and len(received) == 3000
    assert len(speech_endpoint.requests) == 1 and fake_time.sleeps == []


@pytest.mark.parametrize("cut_after", [0, 5])
async def test_a_cut_before_the_first_audio_is_retried(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime, cut_after: int
) -> None:
    speech_endpoint.inject(Fault(cut_after=cut_after))

    _, chunks = await read_chunks(client)

    assert b"".join(chunks) == speech_endpoint.served[-1]
    assert len(speech_endpoint.requests) == 2
    assert_backoff(fake_time.sleeps)


async def test_a_stalled_stream_times_out(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, timeouts=Timeouts(between_chunks=0.2))
    speech_endpoint.inject(Fault(chunk_delay=2.0))
    stream = await client.open(SpeechRequest(text="hello world", voice="alloy", format=AudioFormat.WAV))

    with pytest.raises(SpeechTimeoutError) as caught:
        async for _ in stream:
            pass

    assert caught.value.user_message == MSG_TIMEOUT
    assert len(speech_endpoint.requests) == 1 and fake_time.sleeps == []


async def test_chunks_are_handed_out_as_they_arrive(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, timeouts=Timeouts(between_chunks=1.0))
    speech_endpoint.inject(Fault(chunk_delay=0.05))

    _, chunks = await read_chunks(client)

    assert len(chunks) > 1, "a slow body must still be streamed, not buffered whole"
    assert b"".join(chunks) == speech_endpoint.served[-1]


# --- retries ----------------------------------------------------------------------------------------------


def assert_backoff(sleeps: list[float]) -> None:
    """Exponential from 0.5 s with up to 25 % jitter taken off."""
    assert len(sleeps) >= 1
    for retry, delay in enumerate(sleeps):
        nominal = min(0.5 * 2**retry, 8.0)
        assert 0.75 * nominal <= delay <= nominal


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
async def test_transient_statuses_are_retried(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime, status: int
) -> None:
    speech_endpoint.inject(Fault(status=status))

    found, _ = await read_chunks(client)

    assert found is AudioFormat.OPUS
    assert len(speech_endpoint.requests) == 2
    assert_backoff(fake_time.sleeps)


async def test_retries_stop_after_max_attempts(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime
) -> None:
    speech_endpoint.inject(Fault(status=503, times=5))

    with pytest.raises(SpeechServiceError) as caught:
        await client.open(HELLO)

    assert (caught.value.status, caught.value.retryable, caught.value.user_message) == (503, True, MSG_SERVER)
    assert len(speech_endpoint.requests) == 3
    assert len(fake_time.sleeps) == 2
    assert_backoff(fake_time.sleeps)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=400, message="Invalid value for voice."),
        Fault(status=403, message="Country, region, or territory not supported"),
        Fault(status=404, message="The model does not exist"),
        Fault(status=422, shape=ErrorShape.DETAIL_LIST, message="field required"),
        Fault(status=429, code="insufficient_quota", error_type="insufficient_quota", message="Quota exceeded"),
        Fault(status=400, headers={"x-should-retry": "true"}),
        Fault(status=503, headers={"x-should-retry": "false"}),
        Fault(status=503, headers={"Retry-After": "121"}),
    ],
    ids=["400", "403", "404", "422", "quota", "400-should-retry", "503-should-not-retry", "retry-after-too-long"],
)
async def test_errors_that_are_not_retried(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime, fault: Fault
) -> None:
    speech_endpoint.inject(fault)

    with pytest.raises(SpeechError) as caught:
        await client.open(HELLO)

    assert caught.value.status == fault.status
    assert len(speech_endpoint.requests) == 1 and fake_time.sleeps == []


async def test_a_wrong_key_is_not_retried(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, api_key="sk-wrong-key-000000")

    with pytest.raises(SpeechError) as caught:
        await client.open(HELLO)

    assert (caught.value.status, caught.value.code, caught.value.retryable) == (401, "invalid_api_key", False)
    assert len(speech_endpoint.requests) == 1 and fake_time.sleeps == []


async def test_should_retry_header_makes_an_unknown_status_retryable(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime
) -> None:
    speech_endpoint.inject(Fault(status=418, headers={"x-should-retry": "true"}))

    await read_chunks(client)

    assert len(speech_endpoint.requests) == 2


def http_date_in(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "0.25"}, 0.25),
        ({"retry-after-ms": "300", "Retry-After": "7"}, 0.3),
        ({"Retry-After": "20"}, 20.0),
    ],
)
async def test_retry_delay_honours_the_server(
    client: OpenAISpeechClient,
    speech_endpoint: SpeechEndpoint,
    fake_time: FakeTime,
    headers: dict[str, str],
    expected: float,
) -> None:
    speech_endpoint.inject(Fault(status=429, code="rate_limit_exceeded", headers=headers))

    await read_chunks(client)

    assert fake_time.sleeps == [expected]
    assert len(speech_endpoint.requests) == 2


async def test_retry_after_may_be_an_http_date(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime
) -> None:
    speech_endpoint.inject(Fault(status=503, headers={"Retry-After": http_date_in(5)}))

    await read_chunks(client)

    [delay] = fake_time.sleeps
    assert 3.0 <= delay <= 5.0  # the date has one-second resolution


async def test_retries_stop_when_the_total_time_is_spent(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, policy=RetryPolicy(max_attempts=5, max_total=5))
    speech_endpoint.inject(Fault(status=429, headers={"Retry-After": "2"}, times=5))

    with pytest.raises(SpeechRateLimitError) as caught:
        await client.open(HELLO)

    assert fake_time.sleeps == [2.0, 2.0]  # a third wait would end after 6 s > 5 s
    assert len(speech_endpoint.requests) == 3
    assert caught.value.retry_after == 2.0 and caught.value.retryable


async def test_a_slow_first_byte_is_retried(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, timeouts=Timeouts(first_byte=0.2))
    await local_speech(client.request_body(HELLO))  # synthesis time must not count against the timeout
    speech_endpoint.inject(Fault(first_byte_delay=2.0))

    found, _ = await read_chunks(client)

    assert found is AudioFormat.OPUS
    assert len(speech_endpoint.requests) == 2
    assert_backoff(fake_time.sleeps)


async def test_a_hanging_server_times_out_after_every_attempt(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, timeouts=Timeouts(first_byte=0.2))
    speech_endpoint.inject(Fault(hang=True, times=3))

    with pytest.raises(SpeechTimeoutError) as caught:
        await client.open(HELLO)

    assert (caught.value.user_message, caught.value.retryable) == (MSG_TIMEOUT, True)
    assert len(speech_endpoint.requests) == 3 and len(fake_time.sleeps) == 2


async def test_a_retry_waits_for_its_first_byte_only_as_long_as_the_total_allows(
    session: aiohttp.ClientSession, speech_endpoint: SpeechEndpoint
) -> None:
    """A 503, then a server that never answers: the retry gives up when ``max_total`` is spent, not after its
    whole first-byte timeout (30 s here, which the deadline below would catch)."""
    clock = FakeTime()
    policy = RetryPolicy(max_attempts=3, max_total=1.0, base_delay=0.5, max_delay=0.5)
    client = OpenAISpeechClient(
        session, base_url=speech_endpoint.base_url, api_key=SPEECH_TEST_KEY, model="gpt-4o-mini-tts",
        voices=VOICES, policy=policy, timeouts=Timeouts(first_byte=30.0), sleep=clock.sleep,
        clock=lambda: time.monotonic() + clock.now,  # real time passes, the backoff sleeps are skipped
    )
    speech_endpoint.inject(Fault(status=503))
    speech_endpoint.inject(Fault(hang=True))

    async with asyncio.timeout(10):
        with pytest.raises(SpeechTimeoutError):
            await client.open(HELLO)

    assert len(speech_endpoint.requests) == 2 and len(clock.sleeps) == 1


async def test_an_unreachable_server_is_retried_then_reported(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = make_client(session, fake_time, f"http://127.0.0.1:{free_port()}/v1")

    with pytest.raises(SpeechConnectionError) as caught:
        await client.open(HELLO)

    assert (caught.value.user_message, caught.value.retryable) == (MSG_UNREACHABLE, True)
    assert len(fake_time.sleeps) == 2
    assert_backoff(fake_time.sleeps)


async def test_max_attempts_one_means_no_retry(
    session: aiohttp.ClientSession, fake_time: FakeTime, speech_endpoint: SpeechEndpoint
) -> None:
    client = make_client(session, fake_time, speech_endpoint.base_url, policy=RetryPolicy(max_attempts=1))
    speech_endpoint.inject(Fault(status=500))

    with pytest.raises(SpeechServiceError):
        await client.open(HELLO)

    assert len(speech_endpoint.requests) == 1


async def test_cleared_faults_are_not_served(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fake_time: FakeTime
) -> None:
    speech_endpoint.inject(Fault(status=503, times=3))
    speech_endpoint.clear_faults()

    await read_chunks(client)

    assert len(speech_endpoint.requests) == 1 and fake_time.sleeps == []


def test_logged_error_details_never_carry_the_users_words() -> None:
    from bot.speech.client import loggable_detail

    request = SpeechRequest(text="my secret diary entry", voice="alloy")
    assert loggable_detail("Input 'my secret' is invalid", request) == "Input [quoted] is invalid"
    assert loggable_detail("cannot speak my secret diary entry today", request) == "cannot speak [text] today"
    assert loggable_detail("voice not supported for model", request) == "voice not supported for model"
