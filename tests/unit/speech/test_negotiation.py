"""Format negotiation for playback and the pcm sample rate, against the loopback double's server quirks (issue 13
items 2, 5 and 7): a wav-only server, 22,050 Hz pcm announced in headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.audio.formats import AudioFormat
from bot.speech.client import OpenAISpeechClient, pcm_sample_rate, refuses_format
from bot.speech.error_parsing import error_from_response
from bot.speech.errors import SpeechRejectedError
from bot.speech.models import SpeechRequest, read_all
from tests.loopback.speech_server import ServerQuirks, SpeechEndpoint

TEXT = "hello world"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client_for(session: aiohttp.ClientSession, endpoint: SpeechEndpoint) -> OpenAISpeechClient:
    return OpenAISpeechClient(session, base_url=endpoint.base_url, api_key=None, model="gpt-4o-mini-tts",
                              voices=["alloy", "nova"])


async def test_playback_falls_back_to_wav_on_a_wav_only_server_and_remembers(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.wav_only()) as endpoint:
        client = client_for(session, endpoint)
        voice = SpeechRequest(TEXT, "alloy", AudioFormat.OPUS, playback=True)
        audio = await read_all(await client.open(voice))
        assert audio.format is AudioFormat.WAV
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus", "wav"]
        assert client.refused_formats == {AudioFormat.OPUS}

        await read_all(await client.open(voice))  # remembered: asks wav straight away
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus", "wav", "wav"]
        assert client.playback_formats() == [AudioFormat.WAV, AudioFormat.PCM]
    assert endpoint.failures == []


async def test_a_file_request_keeps_the_users_format_and_gets_the_servers_reason(
    session: aiohttp.ClientSession,
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.wav_only()) as endpoint:
        client = client_for(session, endpoint)
        with pytest.raises(SpeechRejectedError) as caught:
            await client.open(SpeechRequest(TEXT, "alloy", AudioFormat.OPUS))
        assert "needs the ffmpeg binary" in caught.value.user_message
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus"]


async def test_playback_falls_back_to_pcm_when_wav_is_refused_too(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(formats=frozenset({"pcm"}))) as endpoint:
        client = client_for(session, endpoint)
        audio = await read_all(await client.open(SpeechRequest(TEXT, "alloy", AudioFormat.OPUS, playback=True)))
        assert audio.format is AudioFormat.PCM
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus", "wav", "pcm"]


async def test_a_refusal_not_about_the_format_is_not_negotiated(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(voices=frozenset({"alloy"}), unknown_voice_status=400)) as endpoint:
        client = client_for(session, endpoint)
        with pytest.raises(SpeechRejectedError):
            await client.open(SpeechRequest(TEXT, "nova", AudioFormat.OPUS, playback=True))
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus"]
        assert client.refused_formats == frozenset()


@pytest.mark.parametrize("announced", ["x-sample-rate", "content-type"])
async def test_pcm_at_22050_hz_is_resampled_to_24_khz(session: aiohttp.ClientSession, announced: str) -> None:
    async with SpeechEndpoint() as reference:
        pcm_24k = (await read_all(await client_for(session, reference).open(
            SpeechRequest(TEXT, "alloy", AudioFormat.PCM)))).data
    quirks = ServerQuirks(pcm_rate=22_050, pcm_rate_header=announced)
    async with SpeechEndpoint(quirks=quirks) as endpoint:
        audio = await read_all(await client_for(session, endpoint).open(SpeechRequest(TEXT, "alloy", AudioFormat.PCM)))
        assert len(endpoint.served[-1]) == pytest.approx(len(pcm_24k) * 22_050 / 24_000, rel=0.01)
    assert audio.format is AudioFormat.PCM
    assert len(audio.data) == pytest.approx(len(pcm_24k), rel=0.01)  # same duration at 24 kHz


async def test_pcm_without_an_announced_rate_is_taken_as_24_khz(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(pcm_rate=22_050, pcm_rate_header=None)) as endpoint:
        audio = await read_all(await client_for(session, endpoint).open(SpeechRequest(TEXT, "alloy", AudioFormat.PCM)))
        assert audio.data == endpoint.served[-1]


@pytest.mark.parametrize(
    ("headers", "rate"),
    [
        ({"X-Sample-Rate": "22050", "Content-Type": "audio/pcm_s16le"}, 22_050),  # local-tts-studio
        ({"Content-Type": "audio/pcm;rate=22050"}, 22_050),  # openedai-speech
        ({"Content-Type": "audio/L16; rate=16000; channels=1"}, 16_000),
        ({"Content-Type": "audio/pcm"}, None),  # loudness-tts, OpenAI: 24 kHz
        ({"X-Sample-Rate": "fast"}, None),
        ({"X-Sample-Rate": "5"}, None),
    ],
)
def test_pcm_sample_rate_from_headers(headers: dict[str, str], rate: int | None) -> None:
    assert pcm_sample_rate(headers) == rate


@pytest.mark.parametrize(
    ("status", "body", "fmt", "refused"),
    [
        (400, (b'{"error": {"message": "response_format \'opus\' needs the ffmpeg binary on the server host",'
               b' "type": "invalid_request_error", "param": null, "code": "unsupported_response_format"}}'),
         "opus", True),
        (400, (b'{"error": {"message": "opus needs FFmpeg on the PATH; use wav or pcm, or install FFmpeg.",'
               b' "type": "invalid_request_error", "code": "FORMAT_UNAVAILABLE"}}'), "opus", True),  # loudness-tts
        (422, b'{"detail": [{"loc": ["body", "response_format"], "msg": "Input should be \'wav\' or \'pcm\'"}]}',
         "opus", True),
        (400, b'{"error": "No voice called \'zeus\'."}', "opus", False),
        (503, b'{"error": "opus is not available right now"}', "opus", False),  # a 5xx is not a refusal
    ],
)
def test_which_answers_refuse_a_format(status: int, body: bytes, fmt: str, refused: bool) -> None:
    assert refuses_format(error_from_response(status, {}, body), AudioFormat(fmt)) is refused
