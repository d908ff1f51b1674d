"""``instructions`` on strict servers (issue 13 item 4): a 4xx naming the field → once more without it,
remembered for the endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.audio.formats import AudioFormat
from bot.speech.client import OpenAISpeechClient
from bot.speech.errors import SpeechRejectedError
from bot.speech.models import SpeechRequest, read_all
from tests.loopback.speech_server import Fault, ServerQuirks, SpeechEndpoint

STYLED = SpeechRequest("hello world", "alloy", AudioFormat.WAV, instructions="Speak calmly.")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client_for(session: aiohttp.ClientSession, endpoint: SpeechEndpoint) -> OpenAISpeechClient:
    return OpenAISpeechClient(session, base_url=endpoint.base_url, api_key=None, model="gpt-4o-mini-tts",
                              voices=["alloy"])


async def test_a_strict_server_gets_the_request_again_without_instructions_and_never_again_with(
    session: aiohttp.ClientSession,
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.strict()) as endpoint:
        client = client_for(session, endpoint)
        assert client.accepts_instructions is None
        audio = await read_all(await client.open(STYLED))
        assert audio.format is AudioFormat.WAV
        assert ["instructions" in r.json for r in endpoint.requests] == [True, False]
        assert client.accepts_instructions is False

        await read_all(await client.open(STYLED))
        assert ["instructions" in r.json for r in endpoint.requests] == [True, False, False]
    assert endpoint.failures == []


async def test_a_server_that_takes_instructions_keeps_getting_them(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint() as endpoint:
        client = client_for(session, endpoint)
        await read_all(await client.open(STYLED))
        assert client.accepts_instructions is True and endpoint.requests[-1].json["instructions"] == "Speak calmly."


async def test_other_refusals_are_not_retried_without_instructions(session: aiohttp.ClientSession) -> None:
    async with SpeechEndpoint() as endpoint:
        endpoint.inject(Fault(status=400, message="Input contains disallowed content."))
        client = client_for(session, endpoint)
        with pytest.raises(SpeechRejectedError):
            await client.open(STYLED)
        assert len(endpoint.requests) == 1 and client.accepts_instructions is None
