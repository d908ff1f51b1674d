"""Speech errors: every error body shape, the status → message mapping, redaction, and the double's strictness.

The end-to-end tests go through the loopback endpoint, so the shapes are those a real peer would send.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.audio.formats import AudioFormat
from bot.speech.client import MSG_NOT_AUDIO, MSG_UNREACHABLE, OpenAISpeechClient, Timeouts
from bot.speech.error_parsing import (
    MSG_AUTH,
    MSG_FORBIDDEN,
    MSG_NOT_FOUND,
    MSG_QUOTA,
    MSG_RATE_LIMITED,
    MSG_SERVER,
    MSG_TIMEOUT,
    ErrorDetail,
    error_from_response,
    parse_error_body,
    redact,
)
from bot.speech.errors import (
    SpeechAuthError,
    SpeechError,
    SpeechRateLimitError,
    SpeechRejectedError,
    SpeechServiceError,
    SpeechTimeoutError,
)
from bot.speech.models import SpeechRequest
from bot.speech.retry import RetryPolicy, retry_after_seconds
from tests.loopback.openai_spec import error_response_problems
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import ErrorShape, Fault, SpeechEndpoint, error_body, local_speech

HELLO = SpeechRequest(text="hello world", voice="alloy", format=AudioFormat.OPUS)


async def no_sleep(_: float) -> None:
    """Retries happen at once: these tests are about what the error says, not when."""


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_client(session: aiohttp.ClientSession, base_url: str, *, api_key: str = SPEECH_TEST_KEY) -> OpenAISpeechClient:
    return OpenAISpeechClient(
        session,
        base_url=base_url,
        api_key=api_key,
        model="gpt-4o-mini-tts",
        voices=["alloy"],
        timeouts=Timeouts(connect=1.0, first_byte=0.3, between_chunks=0.3),
        sleep=no_sleep,
    )


@pytest.fixture
def client(session: aiohttp.ClientSession, speech_endpoint: SpeechEndpoint) -> OpenAISpeechClient:
    return make_client(session, speech_endpoint.base_url)


# --- parsing every body shape -----------------------------------------------------------------------------

#: The shapes that carry a machine-readable code.
SHAPES_WITH_CODE = {ErrorShape.OPENAI, ErrorShape.DETAIL_OBJECT, ErrorShape.FLAT}


@pytest.mark.parametrize("shape", list(ErrorShape))
def test_every_body_shape_yields_its_message(shape: ErrorShape) -> None:
    body, _ = error_body(shape, "Voice 'x' is not available.", code="voice_unavailable")

    parsed = parse_error_body(body)

    assert parsed.message is not None and "Voice 'x' is not available." in parsed.message
    assert parsed.code == ("voice_unavailable" if shape in SHAPES_WITH_CODE else None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "m", "type": "t", "param": null, "code": null}}', ErrorDetail("m", None, "t")),
        (b'{"error": {"message": "m", "type": "t", "param": null, "code": 400}}', ErrorDetail("m", "400", "t")),
        ((b'{"detail": [{"loc": ["body", "speed"], "msg": "too fast", "input": "the user text"},'
         b' {"loc": ["body"], "msg": "bad"}]}'), ErrorDetail("speed: too fast; bad", param="speed")),
        (b'{"detail": {"error": "invalid_model", "message": "No such model", "type": "invalid_request_error"}}',
         ErrorDetail("No such model", "invalid_model", "invalid_request_error")),
        (b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
         ErrorDetail("502 Bad Gateway")),
        (b"<h1>Forbidden</h1>", ErrorDetail("Forbidden")),
        (b"x" * 2000, ErrorDetail("x" * 664 + " … " + "x" * 333)),
        (b"[1, 2]", ErrorDetail("[1, 2]")),
        (b'{"unexpected": true}', ErrorDetail('{"unexpected": true}')),
        (b"", ErrorDetail()),
        (b"\xff\xfe not utf-8", ErrorDetail("\ufffd\ufffd not utf-8")),
    ],
    ids=["openai", "numeric-code", "fastapi-list-skips-input", "kokoro", "html-title", "html-no-title",
         "long-text", "json-list", "unknown-json", "empty", "binary"],
)
def test_parse_edge_cases(body: bytes, expected: ErrorDetail) -> None:
    assert parse_error_body(body) == expected


# --- status → user message ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "message", "retryable"),
    [
        (401, b'{"error": "bad key"}', SpeechAuthError, MSG_AUTH, False),
        (403, b'{"error": "region"}', SpeechAuthError, MSG_FORBIDDEN, False),
        (404, b"Not Found", SpeechRejectedError, MSG_NOT_FOUND, False),
        (408, b"", SpeechTimeoutError, MSG_TIMEOUT, True),
        (409, b"", SpeechServiceError, MSG_SERVER, True),
        (429, b'{"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}',
         SpeechRateLimitError, MSG_RATE_LIMITED, True),
        (429, b'{"error": {"message": "quota", "type": "insufficient_quota", "param": null, "code": null}}',
         SpeechRateLimitError, MSG_QUOTA, False),
        (500, b"oops", SpeechServiceError, MSG_SERVER, True),
        (503, b'{"message": "overloaded", "code": 503, "type": "ServiceUnavailableError"}', SpeechServiceError,
         MSG_SERVER, True),
        (413, b"too large", SpeechRejectedError, "The speech service refused the request (HTTP 413): too large", False),
    ],
)
def test_status_maps_to_a_short_message(
    status: int, body: bytes, cls: type[SpeechError], message: str, retryable: bool
) -> None:
    error = error_from_response(status, {}, body)

    assert type(error) is cls
    assert (error.status, error.user_message, error.retryable) == (status, message, retryable)
    assert str(error) == message


@pytest.mark.parametrize("status", [400, 422])
def test_rejections_quote_the_service_trimmed(status: int) -> None:
    long_message = "Input is invalid because " + "very " * 100 + "long."

    error = error_from_response(status, {}, error_body(ErrorShape.OPENAI, long_message)[0])

    assert error.user_message.startswith("The speech service rejected the request: Input is invalid because very")
    assert len(error.user_message) <= len("The speech service rejected the request: ") + 200
    assert " … " in error.user_message and error.user_message.endswith("very long.")  # start and end kept
    assert error.detail == " ".join(long_message.split())  # the operator gets all of it


def test_rejection_without_details_still_reads_well() -> None:
    error = error_from_response(400, {}, b"")

    assert error.user_message == "The speech service rejected the request: no details given."


def test_redact_hides_keys_tokens_and_the_configured_secret() -> None:
    text = "Bearer abc.def sk-proj-AbC123xyz789 and my-own-secret and sk-test-***********6789"

    redacted = redact(text, ["my-own-secret"])

    assert redacted == "[redacted] [redacted] and [redacted] and [redacted]"


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    for garbage in ("soon", "-1", "nan", "inf"):
        assert retry_after_seconds({"retry-after": garbage}) is None
    assert retry_after_seconds({}) is None


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy()

    assert policy.delay(1, None, rng=lambda: 0.0) == 0.5
    assert policy.delay(3, None, rng=lambda: 1.0) == 2.0 * 0.75
    assert policy.delay(10, None, rng=lambda: 0.0) == 8.0
    assert policy.delay(1, 120.0) == 120.0
    assert policy.delay(1, 120.5) is None


# --- end to end through the double ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(ErrorShape))
async def test_each_shape_of_400_reaches_the_user(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, shape: ErrorShape
) -> None:
    speech_endpoint.inject(Fault(status=400, shape=shape, message="Voice 'alloy' is not available for this model."))

    with pytest.raises(SpeechRejectedError) as caught:
        await client.open(HELLO)

    assert caught.value.user_message.startswith("The speech service rejected the request: ")
    assert caught.value.user_message.endswith("Voice 'alloy' is not available for this model.")
    assert (caught.value.status, caught.value.retryable) == (400, False)
    assert len(speech_endpoint.requests) == 1


@pytest.mark.parametrize("shape", list(ErrorShape))
async def test_each_shape_of_503_is_a_retried_service_error(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, shape: ErrorShape
) -> None:
    speech_endpoint.inject(Fault(status=503, shape=shape, message="Engine overloaded", times=3))

    with pytest.raises(SpeechServiceError) as caught:
        await client.open(HELLO)

    assert caught.value.user_message == MSG_SERVER
    assert caught.value.detail is not None and caught.value.detail.endswith("Engine overloaded")
    assert len(speech_endpoint.requests) == 3


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault(status=429, body={"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                           "param": None, "code": "insufficient_quota"}}), MSG_QUOTA),
        (Fault(status=400, body={"detail": "Missing input text"}),
         "The speech service rejected the request: Missing input text"),
        (Fault(status=502, body=b"\x00\x01 upstream", times=3), MSG_SERVER),
        (Fault(status=500, body="Internal Server Error", content_type="text/html", times=3), MSG_SERVER),
    ],
    ids=["dict", "detail-string", "bytes", "text-labelled-html"],
)
async def test_raw_error_bodies(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fault: Fault, message: str
) -> None:
    speech_endpoint.inject(fault)

    with pytest.raises(SpeechError) as caught:
        await client.open(HELLO)

    assert (caught.value.status, caught.value.user_message) == (fault.status, message)


async def test_quota_code_in_a_kokoro_shaped_body_is_recognised(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint
) -> None:
    speech_endpoint.inject(Fault(status=429, shape=ErrorShape.DETAIL_OBJECT, code="insufficient_quota"))

    with pytest.raises(SpeechRateLimitError) as caught:
        await client.open(HELLO)

    assert (caught.value.user_message, caught.value.code, caught.value.retryable) == (
        MSG_QUOTA, "insufficient_quota", False)


# --- the key never leaks ------------------------------------------------------------------------------------

LEAK_FAULTS = [
    Fault(status=400, message=f"Invalid header: Authorization: Bearer {SPEECH_TEST_KEY}"),
    Fault(status=422, shape=ErrorShape.DETAIL_LIST, message=f"api key {SPEECH_TEST_KEY} malformed"),
    Fault(status=400, shape=ErrorShape.PLAIN_TEXT, message=f"bad key {SPEECH_TEST_KEY}"),
    Fault(status=403, shape=ErrorShape.ERROR_STRING, message=f"key {SPEECH_TEST_KEY} not allowed here"),
    Fault(status=429, message=f"Rate limit for {SPEECH_TEST_KEY}", times=3),
    Fault(status=503, shape=ErrorShape.HTML, message=f"Upstream refused {SPEECH_TEST_KEY}", times=3),
    Fault(status=429, code="insufficient_quota", message=f"Quota of {SPEECH_TEST_KEY} exceeded"),
    Fault(body=f'{{"echo": "{SPEECH_TEST_KEY}"}}'.encode()),
    Fault(hang=True, times=3),
    Fault(cut_after=100),
    Fault(chunk_delay=1.0),
]


@pytest.mark.parametrize("fault", LEAK_FAULTS, ids=lambda f: f"{f.status}-{f.shape}-{f.hang}-{f.cut_after}")
async def test_the_key_never_appears_in_errors_or_logs(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    request = SpeechRequest(text="hello world", voice="alloy", format=AudioFormat.WAV)
    await local_speech(client.request_body(request))  # synthesis time must not count against the timeouts
    caplog.set_level(logging.DEBUG)
    speech_endpoint.inject(fault)

    with pytest.raises(SpeechError) as caught:
        stream = await client.open(request)
        async for _ in stream:
            pass

    error = caught.value
    visible = [str(error), repr(error), error.user_message, error.detail or "", caplog.text]
    visible += [str(cause) + repr(cause) for cause in (error.__cause__, error.__context__) if cause]
    for text in visible:
        assert SPEECH_TEST_KEY not in text


async def test_a_wrong_key_is_not_echoed(
    session: aiohttp.ClientSession, speech_endpoint: SpeechEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-DISTINCTIVE-999999"
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SpeechAuthError) as caught:
        await make_client(session, speech_endpoint.base_url, api_key=wrong).open(HELLO)

    assert caught.value.user_message == MSG_AUTH
    assert caught.value.detail == "Incorrect API key provided: [redacted]."
    assert "9999" not in caplog.text + repr(caught.value) + str(caught.value.detail)


async def test_unreachable_and_not_audio_messages(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with SpeechEndpoint(api_key=SPEECH_TEST_KEY) as endpoint:
        base_url = endpoint.base_url
        endpoint.inject(Fault(body=b"<html>maintenance</html>"))
        with pytest.raises(SpeechServiceError) as not_audio:
            await make_client(session, base_url).open(HELLO)
    with pytest.raises(SpeechError) as unreachable:
        await make_client(session, base_url).open(HELLO)

    assert not_audio.value.user_message == MSG_NOT_AUDIO
    assert unreachable.value.user_message == MSG_UNREACHABLE
    assert SPEECH_TEST_KEY not in caplog.text + repr(unreachable.value)


async def test_logs_say_what_failed_but_never_the_text(
    client: OpenAISpeechClient, speech_endpoint: SpeechEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.speech")
    speech_endpoint.inject(Fault(status=503, code="overloaded", times=3))
    secret_text = SpeechRequest(text="my private diary entry", voice="alloy")

    with pytest.raises(SpeechServiceError):
        await client.open(secret_text)

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot.speech"))
    assert "status=503 code=overloaded kind=SpeechServiceError attempts=3" in ours
    assert ours.count("retrying in") == 2
    assert "diary" not in ours


async def test_text_the_engine_cannot_speak_is_a_400(client: OpenAISpeechClient) -> None:
    with pytest.raises(SpeechRejectedError) as caught:
        await client.open(SpeechRequest(text="...", voice="alloy"))

    assert "nothing to say" in caught.value.user_message


# --- the double itself is strict, and its own errors follow the spec ----------------------------------------


async def test_the_double_refuses_what_the_spec_refuses(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(api_key=SPEECH_TEST_KEY) as endpoint:
        auth = {"Authorization": f"Bearer {SPEECH_TEST_KEY}"}
        url = endpoint.base_url + "/audio/speech"
        valid = {"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "wav"}
        attempts = [
            session.get(url, headers=auth),
            session.post(endpoint.base_url + "/audio/speeches", json=valid, headers=auth),
            session.post(url, data=b"model=tts-1", headers=auth),
            session.post(url, json={**valid, "stream": True}, headers=auth),
            session.post(url, json={**valid, "speed": 9}, headers=auth),
            session.post(url, json={"model": "tts-1", "input": "hi", "voice": "alloy"}, headers=auth),
            session.post(url, json={**valid, "instructions": "whisper"}, headers=auth),
            session.post(url, json=valid, headers={"Authorization": "Bearer sk-nope"}),
            session.post(url, json=valid),
        ]
        statuses = []
        for attempt in attempts:
            async with attempt as response:
                statuses.append(response.status)
                assert error_response_problems(await response.json()) == []

    assert statuses == [404, 404, 400, 400, 400, 400, 400, 401, 401]
    assert len(endpoint.failures) == 7  # wrong keys are not protocol violations
    assert endpoint.served == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 429, 500, 503])
async def test_injected_openai_errors_follow_the_spec(session: aiohttp.ClientSession, status: int) -> None:
    async with SpeechEndpoint() as endpoint:
        endpoint.inject(Fault(status=status, code="some_code"))
        body = {"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "wav"}
        async with session.post(endpoint.base_url + "/audio/speech", json=body) as response:
            assert response.status == status
            assert error_response_problems(await response.json()) == []
    assert endpoint.failures == []
