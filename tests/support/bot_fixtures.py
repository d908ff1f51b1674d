"""The default end-to-end bot: the real process against the loopback speech endpoint (OpenAI backend, 3 s
speech timeout, no fallback engine: the endpoint's own failures reach the user). A module that needs another
set-up defines its own ``bot`` fixture, which takes precedence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.bot_process import BotProcess, running_bot


@pytest.fixture
async def bot(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> AsyncIterator[BotProcess]:
    async with running_bot(
        discord_emulator,
        tmp_path,
        SPEECH_API_BASE_URL=speech_endpoint.base_url,
        SPEECH_API_KEY=SPEECH_TEST_KEY,
        SPEECH_BACKEND="openai",
        SPEECH_TIMEOUT="3",
        SPEECH_FALLBACK="none",
    ) as process:
        yield process


async def speak(emu: DiscordEmulator, **options: object):  # noqa: ANN201 - the emulator's interaction type
    """``/speak`` with ``options`` from alice in the emulator's text channel."""
    return await emu.invoke("speak", options, user=emu.user, guild=emu.guild, channel=emu.text_channel)
