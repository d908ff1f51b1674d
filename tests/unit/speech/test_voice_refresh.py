"""The speech server's voice list asked again while the bot runs (``bot.speech.voices.VoiceRefresher``): on a
schedule driven by an injected clock, and soon after the server says a voice the bot offers is not found; against
the loopback speech server, whose list changes under the bot."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import load_settings
from bot.speech.capabilities import EndpointCapabilities, VoiceSource
from bot.speech.client import OpenAISpeechClient
from bot.speech.errors import SpeechRejectedError, SpeechValidationError
from bot.speech.factory import endpoint_capabilities, make_voice_refresher
from bot.speech.models import SpeechRequest
from bot.speech.retry import RetryPolicy
from bot.speech.voices import VoiceRefresher, ask_voice_list
from tests.loopback.speech_server import SpeechEndpoint

#: Bounds a wait for the background loop (a safety net against a hang, never an assertion about time).
WAIT = 10


class Clock:
    """The refresher's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let the background loop run until it waits again (a few turns of the event loop; no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def serving(endpoint: SpeechEndpoint, *voices: str) -> None:
    """The loopback server now has ``voices``: it lists them and refuses any other."""
    endpoint.quirks = dataclasses.replace(endpoint.quirks, voice_list={"voices": list(voices)},
                                          voices=frozenset(voices))


def refresher_for(
    session: aiohttp.ClientSession, endpoint: SpeechEndpoint, capabilities: EndpointCapabilities, clock: Clock,
    *, configured: tuple[str, ...] = ("alloy",), configured_set: bool = False, default_voice: str = "alloy",
) -> VoiceRefresher:
    async def ask() -> tuple[tuple[str, ...] | None, str | None]:
        return await ask_voice_list(session, endpoint.base_url, None)

    return VoiceRefresher(capabilities, ask, configured=configured, configured_set=configured_set,
                          default_voice=default_voice, clock=clock)


async def test_the_list_is_asked_again_when_the_clock_says_so_and_the_change_is_logged_once(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    capabilities = EndpointCapabilities(voices=("alloy", "af_heart"), voice_source=VoiceSource.SERVER)
    async with SpeechEndpoint() as endpoint:
        serving(endpoint, "alloy", "af_heart")
        refresher = refresher_for(session, endpoint, capabilities, clock)
        refresher.start()
        try:
            serving(endpoint, "af_heart", "am_adam", "bf_emma")
            clock.now += refresher.interval - 1
            refresher.wake()
            await settle()  # the loop looks at the clock: not due yet
            assert refresher.refreshes == 0 and endpoint.voice_list_requests == []

            caplog.set_level(logging.INFO, "bot.speech.voices")
            clock.now += 1
            refresher.wake()
            async with asyncio.timeout(WAIT):
                await refresher.wait_completed(1)
            assert len(endpoint.voice_list_requests) == 1
            # the default voice stays first though the server stopped listing it (the documented rule)
            assert capabilities.voices == ("alloy", "af_heart", "am_adam", "bf_emma")
            [line] = [r.getMessage() for r in caplog.records if "list changed" in r.getMessage()]
            assert "4 offered (was 2)" in line and "added 2: am_adam, bf_emma" in line and "removed 0: none" in line

            # an unchanged list: asked again at the next due time, nothing logged
            clock.now += refresher.interval
            refresher.wake()
            async with asyncio.timeout(WAIT):
                await refresher.wait_completed(2)
            assert len([r for r in caplog.records if "list changed" in r.getMessage()]) == 1
        finally:
            await refresher.close()


async def test_a_failed_refresh_keeps_the_last_good_list_and_says_so_once(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    capabilities = EndpointCapabilities(voices=("alloy", "af_heart"), voice_source=VoiceSource.SERVER)
    async with SpeechEndpoint() as endpoint:  # no voice list: a 404
        refresher = refresher_for(session, endpoint, capabilities, clock)
        assert not await refresher.refresh()
        assert not await refresher.refresh()
        assert capabilities.voices == ("alloy", "af_heart")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "could not be asked again" in warnings[0].getMessage()
        assert "HTTP 404" in warnings[0].getMessage() and "the 2 voices offered stay" in warnings[0].getMessage()

        serving(endpoint, "alloy", "am_adam")
        assert await refresher.refresh()
        assert capabilities.voices == ("alloy", "am_adam")


async def test_speech_voices_still_narrows_a_refreshed_list(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    capabilities = EndpointCapabilities(voices=("bf_emma",), voice_source=VoiceSource.SERVER_AND_SETTING)
    async with SpeechEndpoint() as endpoint:
        refresher = refresher_for(session, endpoint, capabilities, clock, configured=("bf_emma", "am_adam"),
                                  configured_set=True, default_voice="bf_emma")
        serving(endpoint, "af_heart", "am_adam", "bf_emma")
        assert await refresher.refresh()
        assert capabilities.voices == ("bf_emma", "am_adam")
        assert capabilities.voice_source is VoiceSource.SERVER_AND_SETTING


async def test_a_voice_not_found_for_an_offered_voice_makes_the_list_be_asked_again_at_most_once_a_minute(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    capabilities = EndpointCapabilities(voices=("alloy", "bf_emma"), voice_source=VoiceSource.SERVER)
    async with SpeechEndpoint() as endpoint:
        client = OpenAISpeechClient(session, base_url=endpoint.base_url, api_key=None, model="tts-1",
                                    voices=capabilities.voices, policy=RetryPolicy(max_attempts=1),
                                    capabilities=capabilities)
        refresher = refresher_for(session, endpoint, capabilities, clock)
        refresher.start()
        try:
            serving(endpoint, "alloy")  # bf_emma is gone from the server, still offered by the bot
            clock.now += 10  # ten seconds after the list was asked at start: the refresh waits for the minute
            with pytest.raises(SpeechRejectedError) as refused:
                await client.open(SpeechRequest(text="hi", voice="bf_emma"))
            assert refused.value.unavailable == "voice"
            await settle()
            assert endpoint.voice_list_requests == [] and refresher.refreshes == 0

            clock.now += refresher.debounce - 10
            refresher.wake()
            async with asyncio.timeout(WAIT):
                await refresher.wait_completed(1)
            assert len(endpoint.voice_list_requests) == 1
            assert capabilities.voices == ("alloy",)
            # the removed voice is now refused before anything is sent
            with pytest.raises(SpeechValidationError):
                await client.open(SpeechRequest(text="hi", voice="bf_emma"))

            # a minute later, another offered voice refused: asked again at once
            capabilities.voices = ("alloy", "nova")
            clock.now += refresher.debounce
            with pytest.raises(SpeechRejectedError):
                await client.open(SpeechRequest(text="hi", voice="nova"))
            async with asyncio.timeout(WAIT):
                await refresher.wait_completed(2)
            assert len(endpoint.voice_list_requests) == 2 and capabilities.voices == ("alloy",)
        finally:
            await refresher.close()


def test_only_a_refusal_of_an_offered_voice_is_heard() -> None:
    heard: list[str] = []
    capabilities = EndpointCapabilities(voices=("alloy",), on_voice_refused=heard.append)
    capabilities.voice_refused("nova")  # never offered: the user's own typo, the list has not changed
    capabilities.voice_refused("alloy")
    assert heard == ["alloy"]


async def test_only_the_speech_api_engine_refreshes_its_list(session: aiohttp.ClientSession) -> None:
    settings = load_settings({"SPEECH_API_KEY": "k", "SPEECH_API_BASE_URL": "http://127.0.0.1:9/v1"})
    capabilities = endpoint_capabilities(settings)
    refresher = make_voice_refresher(settings, settings, session, capabilities)
    assert refresher is not None and capabilities.on_voice_refused == refresher.voice_refused
    assert refresher.interval == 600 and refresher.debounce == 60
    await refresher.close()
    assert capabilities.on_voice_refused is None
    realtime = load_settings({"SPEECH_API_KEY": "k", "SPEECH_MODEL": "gpt-realtime-2.1-mini"})
    assert make_voice_refresher(realtime, realtime, session, endpoint_capabilities(realtime)) is None
