"""Errors by meaning, not only by status (issue 13 item 3): a 5xx saying the voice, model or format is unknown
or unavailable is permanent (no retry, no breaker count, a message naming it); the server's reason reaches the
operator whole (secrets removed, start and end of a long one), and the user's words never reach a log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.audio.formats import AudioFormat
from bot.speech.breaker import BreakerSpeechBackend, CircuitBreaker
from bot.speech.client import OpenAISpeechClient, loggable_detail
from bot.speech.error_parsing import error_from_response, unavailable_subject
from bot.speech.errors import SpeechRejectedError, SpeechServiceError
from bot.speech.models import SpeechRequest
from tests.loopback.speech_server import ServerQuirks, SpeechEndpoint

LOUDNESS_503 = (b'{"error": {"message": "en_US-clean100-medium is not downloaded yet and downloads are turned off.",'
                b' "type": "server_error", "code": "OFFLINE"}}')


@pytest.mark.parametrize(
    ("message", "code", "subject"),
    [
        ("en_US-clean100-medium is not downloaded yet and downloads are turned off.", "OFFLINE", "voice"),  # loudness
        ("The configured default voice 'x' is not available: model files are missing", "voice_not_ready", "voice"),
        ("Voice 'nova' not found", None, "voice"),
        ("No voice called 'zeus'.", "VOICE_NOT_FOUND", "voice"),
        ("The model 'tts-9' does not exist", None, "model"),
        ("something went wrong", "model_not_found", "model"),
        ("response_format 'opus' is not supported here", None, "format"),
        ("An unknown error occurred while running the model", None, None),
        ("Internal Server Error", None, None),
        ("The server is overloaded, try again", "server_busy", None),
    ],
)
def test_what_an_error_says_is_unavailable(message: str, code: str | None, subject: str | None) -> None:
    assert unavailable_subject(message, code) == subject


def test_a_5xx_naming_an_unavailable_voice_is_permanent_and_names_it() -> None:
    error = error_from_response(503, {}, LOUDNESS_503, asked={"voice": "nova", "model": "m"})
    assert isinstance(error, SpeechRejectedError) and not error.retryable
    assert error.user_message == "The speech service doesn't know the voice 'nova'. Try another voice."
    assert error.unavailable == "voice" and error.status == 503
    assert error.detail == "en_US-clean100-medium is not downloaded yet and downloads are turned off."


def test_a_plain_5xx_is_still_an_outage() -> None:
    error = error_from_response(503, {}, b'{"error": "Service Unavailable"}')
    assert isinstance(error, SpeechServiceError) and error.retryable


def test_a_413s_reason_is_kept() -> None:
    error = error_from_response(413, {}, b'{"error": {"message": "Text is longer than 4000 characters."}}')
    assert error.user_message.endswith("(HTTP 413): Text is longer than 4000 characters.")


def test_the_log_keeps_the_servers_words_and_drops_the_users() -> None:
    request = SpeechRequest("my secret diary entry", "nova", AudioFormat.OPUS)
    detail = "Voice 'nova' not found for input 'my secret diary'; formats: \"wav\", \"pcm\""
    assert loggable_detail(detail, request) == (
        "Voice 'nova' not found for input [quoted]; formats: \"wav\", \"pcm\""
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_an_unknown_voice_as_503_is_asked_once_and_does_not_trip_the_breaker(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(voices=frozenset({"alloy"}))) as endpoint:
        client = OpenAISpeechClient(session, base_url=endpoint.base_url, api_key=None, model="m",
                                    voices=["alloy", "nova"])
        breaker = CircuitBreaker(failure_threshold=1)
        backend = BreakerSpeechBackend(client, breaker)
        with caplog.at_level(logging.WARNING), pytest.raises(SpeechRejectedError) as caught:
            await backend.open(SpeechRequest("hello world", "nova", AudioFormat.WAV))
        assert len(endpoint.requests) == 1 and not breaker.is_open
        assert caught.value.user_message == "The speech service doesn't know the voice 'nova'. Try another voice."
        assert "Voice 'nova' not found: it is not downloaded and downloads are turned off." in caplog.text
        await backend.open(SpeechRequest("hello world", "alloy", AudioFormat.WAV))  # others still work
