"""Capabilities per endpoint (issue 13 item 1): the voices it lists, the speeds it honours and whether its voices
differ, discovered against the loopback double's server quirks (a voice list in each shape real servers use, none,
a web page; clamped and refused speeds; one voice under every name, or distinct voices)."""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.audio.formats import AudioFormat
from bot.config import load_settings
from bot.speech.capabilities import EndpointCapabilities, VoiceSource
from bot.speech.catalog import OPENAI_SPEECH_VOICES, SPEECH_API_SPEEDS, TTS1_VOICES, SpeedRange, default_voices
from bot.speech.client import OpenAISpeechClient
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SpeechStream, SynthesizedAudio
from bot.speech.probe import CapabilityProbe, probe_endpoint
from bot.speech.retry import RetryPolicy
from bot.speech.voices import choose_voices, fetch_voice_list, offered_voices, parse_voice_list
from tests.loopback.speech_server import ServerQuirks, SpeechEndpoint


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client_for(session: aiohttp.ClientSession, endpoint: SpeechEndpoint, voices: list[str],
               capabilities: EndpointCapabilities | None = None) -> OpenAISpeechClient:
    return OpenAISpeechClient(session, base_url=endpoint.base_url, api_key=None, model="tts-1", voices=voices,
                              policy=RetryPolicy(max_attempts=1), capabilities=capabilities)


@pytest.mark.parametrize("answer", [
    {"voices": ["af_heart", "am_adam", "af_heart"]},  # Kokoro-FastAPI
    {"object": "list", "data": [{"id": "af_heart", "name": "Heart"}, {"id": "am_adam"}], "total": 2},  # loudness-tts
    [{"name": "af_heart"}, {"name": "am_adam"}],
    ["af_heart", "am_adam"],
])
async def test_the_voice_list_is_read_in_every_shape_servers_answer(
    session: aiohttp.ClientSession, answer: Any
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(voice_list=answer)) as endpoint:
        assert await fetch_voice_list(session, endpoint.base_url, None) == ("af_heart", "am_adam")
    assert endpoint.failures == []


@pytest.mark.parametrize("answer", [None, {"detail": "Not Found"}, {"voices": []}, "<html>app</html>"])
async def test_an_endpoint_without_a_voice_list_has_none(session: aiohttp.ClientSession, answer: Any) -> None:
    """OpenAI's 404, an answer without voices, a single-page app's HTML on every GET (local-tts-studio)."""
    async with SpeechEndpoint(quirks=ServerQuirks(voice_list=answer)) as endpoint:
        assert await fetch_voice_list(session, endpoint.base_url, None) is None
        assert [(r.method, r.path) for r in endpoint.voice_list_requests] == [("GET", "/v1/audio/voices")]
    assert endpoint.failures == []


async def test_the_voice_list_is_asked_with_the_key(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(api_key="sk-voices", quirks=ServerQuirks(voice_list={"voices": ["a"]})) as endpoint:
        assert await fetch_voice_list(session, endpoint.base_url, "sk-voices") == ("a",)
        assert await fetch_voice_list(session, endpoint.base_url, None) is None  # a 401: no list
        assert endpoint.voice_list_requests[0].headers["Authorization"] == "Bearer sk-voices"


def test_parse_voice_list_drops_what_is_not_a_name() -> None:
    assert parse_voice_list({"voices": ["ok", "", "x" * 101, 3, "bad\x00", {"id": 5, "name": "named"}]}) == (
        "ok", "named")
    assert parse_voice_list({"voices": "alloy"}) is None
    assert parse_voice_list(42) is None


async def test_the_offer_follows_the_server_list_and_narrows_by_speech_voices(session: aiohttp.ClientSession) -> None:
    listed = {"voices": ["af_heart", "am_adam", "bf_emma"]}
    async with SpeechEndpoint(quirks=ServerQuirks(voice_list=listed)) as endpoint:
        env = {"SPEECH_API_KEY": "k", "SPEECH_API_BASE_URL": endpoint.base_url, "SPEECH_DEFAULT_VOICE": "am_adam"}
        settings, offer = await offered_voices(load_settings(env), session)
        assert settings.speech_voices == ("af_heart", "am_adam", "bf_emma") and offer.source is VoiceSource.SERVER
        assert settings.default_voice == "am_adam" and offer.warnings == []

        narrowed_env = load_settings({**env, "SPEECH_VOICES": "bf_emma,alloy,am_adam"})
        narrowed, offer = await offered_voices(narrowed_env, session)
        assert narrowed.speech_voices == ("bf_emma", "am_adam") and offer.source is VoiceSource.SERVER_AND_SETTING
        assert "alloy" in offer.warnings[0] and "not offered" in offer.warnings[0]


async def test_without_a_list_the_offer_is_speech_voices_else_the_model_s(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint() as endpoint:
        env = {"SPEECH_API_KEY": "k", "SPEECH_API_BASE_URL": endpoint.base_url}
        settings, offer = await offered_voices(load_settings({**env, "SPEECH_VOICES": "nova,echo"}), session)
        assert settings.speech_voices == ("nova", "echo") and offer.source is VoiceSource.SETTING
        settings, offer = await offered_voices(load_settings(env), session)
        assert settings.speech_voices == ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
        assert offer.source is VoiceSource.MODEL and offer.warnings == []


def test_the_default_list_follows_the_model_on_openai() -> None:
    openai = "https://api.openai.com/v1"
    assert default_voices("gpt-4o-mini-tts", openai) == OPENAI_SPEECH_VOICES
    assert "marin" in OPENAI_SPEECH_VOICES and "cedar" in OPENAI_SPEECH_VOICES and len(OPENAI_SPEECH_VOICES) == 13
    assert default_voices("tts-1", openai) == TTS1_VOICES and "ballad" not in TTS1_VOICES
    assert default_voices("gpt-4o-mini-tts", "https://api.apimart.ai/v1") == (
        "alloy", "echo", "fable", "onyx", "nova", "shimmer")
    assert load_settings({"SPEECH_API_KEY": "k", "SPEECH_API_BASE_URL": openai}).speech_voices == OPENAI_SPEECH_VOICES


def test_a_default_voice_outside_the_default_list_waits_for_the_server_list() -> None:
    settings = load_settings({"SPEECH_API_KEY": "k", "SPEECH_DEFAULT_VOICE": "af_heart"})
    assert settings.default_voice == "af_heart" and settings.speech_voices[0] == "af_heart"
    offer = choose_voices(settings.speech_voices, False, "af_heart", ["am_adam"])
    assert (offer.voices, offer.default_voice, offer.warnings) == (("af_heart", "am_adam"), "af_heart", [])


def test_a_default_voice_the_server_does_not_list_stays_first_unless_speech_voices_leaves_it_out() -> None:
    """Compatible servers take OpenAI's names for voices of their own without listing them (Kokoro-FastAPI's
    openai_mappings, loudness-tts's default voice)."""
    offer = choose_voices(("alloy", "echo"), False, "alloy", ["af_heart"])
    assert (offer.voices, offer.default_voice, offer.source) == (("alloy", "af_heart"), "alloy", VoiceSource.SERVER)
    narrowed = choose_voices(("nova", "echo"), True, "nova", ["echo", "onyx"])
    assert (narrowed.voices, narrowed.default_voice) == (("echo",), "echo")
    assert "nova" in narrowed.warnings[0] and "SPEECH_DEFAULT_VOICE" in narrowed.warnings[1]


@pytest.mark.slow  # real speech at six speeds, each synthesized by the double
async def test_a_server_that_honours_everything_is_measured_so(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(distinct_voices=True)) as endpoint:
        result = await probe_endpoint(client_for(session, endpoint, ["alloy", "nova"]), ["alloy", "nova"],
                                      SPEECH_API_SPEEDS)
        assert result.speeds == SPEECH_API_SPEEDS and result.voice_honoured is True
        assert sorted(r.json.get("speed", 1.0) for r in endpoint.requests) == [0.25, 0.5, 1.0, 1.0, 2.0, 4.0]
    assert endpoint.failures == []


@pytest.mark.slow  # real speech at six speeds, each synthesized by the double
async def test_clamped_speeds_and_one_voice_under_every_name_are_found(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(speeds=(0.5, 2.0))) as endpoint:
        caps = EndpointCapabilities(voices=("alloy", "nova"))
        probe = CapabilityProbe(client_for(session, endpoint, ["alloy", "nova"], caps), caps, SPEECH_API_SPEEDS,
                                endpoint.base_url)
        with caplog.at_level(logging.WARNING):
            await probe.run()
        assert caps.speeds == SpeedRange(0.5, 2.0) and caps.voice_honoured is False
        assert caps.playback_format is None  # the measuring asks wav for itself, not for playback
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("honours speeds from 0.5 to 2 only" in w and "SPEECH_SPEED_RANGE=0.5-2" in w for w in warnings)
    assert any("every voice" in w and "sounds the same" in w for w in warnings)
    assert caps.speed_notice(4.0) == (
        "This bot's speech server speaks at speeds from 0.5 to 2 only, so 4× sounds like 2×.")
    assert caps.speed_notice(1.5) is None


class TimedBackend:
    """Answers silence lasting what the test says for each speed (in wav, as the measuring asks)."""

    name = "timed"

    def __init__(self, seconds: dict[float, float]) -> None:
        self.seconds = seconds

    async def open(self, request: SpeechRequest) -> SpeechStream:
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(22_050)
            wav.writeframes(b"\0\0" * round(self.seconds[request.speed] * 22_050))
        return BufferedSpeechStream(SynthesizedAudio(out.getvalue(), AudioFormat.WAV))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("seconds", "measured"), [
    # piper (the local engine): its frame rounding weakens every step, and each still moves the duration by 38% or more
    ({1.0: 3.181, 2.0: 1.869, 4.0: 1.161, 0.5: 5.909, 0.25: 11.424}, SpeedRange(0.25, 4.0)),
    # loudness-tts clamps into 0.5-2 and samples its durations: the most apart of 25 tries at each clamped speed
    ({1.0: 3.255, 2.0: 2.047, 4.0: 1.920, 0.5: 5.902, 0.25: 6.064}, SpeedRange(0.5, 2.0)),
    # a step that moves the duration the wrong way is not honoured, however far
    ({1.0: 3.2, 2.0: 1.9, 4.0: 2.6, 0.5: 2.5, 0.25: 9.0}, SpeedRange(1.0, 2.0)),
])
async def test_only_a_change_beyond_noise_in_the_direction_asked_counts_as_a_speed(
    seconds: dict[float, float], measured: SpeedRange
) -> None:
    result = await probe_endpoint(TimedBackend(seconds), ["alloy"], SPEECH_API_SPEEDS)
    assert result.speeds == measured


async def test_refused_speeds_end_the_range_there(session: aiohttp.ClientSession) -> None:
    """A server that answers 400 outside its range (0.5-2 here) rather than clamping into it (loudness-tts clamps)."""
    async with SpeechEndpoint(quirks=ServerQuirks(refused_speeds=(0.5, 2.0))) as endpoint:
        result = await probe_endpoint(client_for(session, endpoint, ["alloy"]), ["alloy"], SPEECH_API_SPEEDS)
        assert result.speeds == SpeedRange(0.5, 2.0) and result.voice_honoured is None


async def test_a_server_that_ignores_speed_is_measured_so(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(speeds=(1.0, 1.0))) as endpoint:
        caps = EndpointCapabilities(voices=("alloy",))
        probe = CapabilityProbe(client_for(session, endpoint, ["alloy"], caps), caps, SPEECH_API_SPEEDS, "x")
        await probe.run()
        assert caps.speeds == SpeedRange(1.0, 1.0)
        assert caps.speed_notice(2.0) == "This bot's speech server ignores speed, so 2× sounds like 1×."
        assert "speed: ignored by the server (measured)" in caps.describe()
