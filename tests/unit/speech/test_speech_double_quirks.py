"""The loopback speech double's server quirks (``ServerQuirks``), one fast test per behaviour, so that what the
bot is tested against is what real servers do (issue 13 item 7; measured in tests/e2e/test_real_servers.py)."""

from __future__ import annotations

import io
import wave
from typing import Any

import aiohttp

from tests.loopback.speech_server import ServerQuirks, SpeechEndpoint

BODY = {"model": "gpt-4o-mini-tts", "input": "hello world", "voice": "alloy", "response_format": "wav"}


async def post(endpoint: SpeechEndpoint, **changes: Any) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{endpoint.base_url}/audio/speech", json={**BODY, **changes}) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def test_strict_server_rejects_unknown_fields_with_fastapis_422() -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.strict()) as endpoint:
        status, _, body = await post(endpoint, instructions="Speak calmly.")
        assert status == 422
        assert b'"loc": ["body", "instructions"]' in body and b"Extra inputs are not permitted" in body
        assert (await post(endpoint, speed=1.5))[0] == 200
    assert endpoint.failures == []


async def test_wav_only_server_refuses_compressed_formats_with_its_reason() -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.wav_only()) as endpoint:
        status, _, body = await post(endpoint, response_format="opus")
        assert status == 400 and b"unsupported_response_format" in body and b"ffmpeg" in body
        assert (await post(endpoint, response_format="wav"))[0] == 200
        assert (await post(endpoint, response_format="pcm"))[0] == 200


async def test_unknown_voice_is_a_5xx_with_a_reason() -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(voices=frozenset({"alloy"}))) as endpoint:
        status, _, body = await post(endpoint, voice="nova")
        assert status == 503 and b"Voice 'nova' not found" in body
        assert (await post(endpoint, voice="alloy"))[0] == 200


async def test_pcm_at_22050_hz_is_announced() -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(pcm_rate=22_050)) as endpoint:
        status, headers, _ = await post(endpoint, response_format="pcm")
        assert status == 200 and headers["X-Sample-Rate"] == "22050"
    async with SpeechEndpoint(quirks=ServerQuirks(pcm_rate=22_050, pcm_rate_header="content-type")) as endpoint:
        status, headers, _ = await post(endpoint, response_format="pcm")
        assert status == 200 and headers["Content-Type"] == "audio/pcm;rate=22050"


def seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as f:
        return f.getnframes() / f.getframerate()


async def test_speed_is_clamped_and_every_voice_sounds_the_same() -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(speeds=(0.5, 2.0))) as endpoint:
        at_2 = seconds((await post(endpoint, speed=2.0))[2])
        at_4 = seconds((await post(endpoint, speed=4.0))[2])
        assert at_4 == at_2
        assert [r.json.get("speed") for r in endpoint.requests] == [2.0, 4.0]  # what was asked, not what was done
        assert (await post(endpoint, voice="nova"))[2] == (await post(endpoint, voice="alloy"))[2]
