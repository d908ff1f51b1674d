"""Raw pcm bodies as real servers send them: sniffing must not mistake them for a container."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest

from bot.audio.formats import AudioFormat
from bot.speech.client import OpenAISpeechClient
from bot.speech.models import SpeechRequest, read_all
from tests.loopback.speech_server import SpeechEndpoint


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def fixed(body: bytes, content_type: str = "audio/pcm") -> Callable[[Mapping[str, Any]], Awaitable[tuple[bytes, str]]]:
    async def audio(_: Mapping[str, Any]) -> tuple[bytes, str]:
        return body, content_type

    return audio


@pytest.mark.parametrize("first_sample", [b"\xff\xff", b"\xff\xf1", b"\xff\xe3"], ids=["-1", "adts-like", "mp3-like"])
async def test_pcm_starting_with_a_sync_word_is_pcm(session: aiohttp.ClientSession, first_sample: bytes) -> None:
    """local-tts-studio's pcm often starts with the sample -1 (``FF FF``), which is also an mp3 frame sync."""
    body = first_sample + bytes(4000)
    async with SpeechEndpoint(audio=fixed(body)) as endpoint:
        client = OpenAISpeechClient(session, base_url=endpoint.base_url, api_key=None, model="m", voices=["alloy"])
        audio = await read_all(await client.open(SpeechRequest("hello", "alloy", AudioFormat.PCM)))
    assert audio.format is AudioFormat.PCM and audio.data == body
