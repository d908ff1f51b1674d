"""The circuit breaker end to end: the real bot fails fast while the endpoint keeps failing, and recovers by itself
(its rules on a fake clock: tests/unit/speech/test_breaker.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.bot_process import running_bot


async def test_the_bot_fails_fast_while_the_endpoint_keeps_failing_and_recovers_by_itself(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    env = {
        "SPEECH_API_BASE_URL": speech_endpoint.base_url,
        "SPEECH_API_KEY": SPEECH_TEST_KEY,
        "SPEECH_BREAKER_FAILURES": "2",
        "SPEECH_BREAKER_COOLDOWN": "2",
        "SPEECH_FALLBACK": "none",  # the failover would speak offline instead (tests/e2e/test_realtime.py)
    }

    async def speak() -> str:
        interaction = await emu.invoke("speak", {"text": "Hello world."}, user=emu.user, guild=emu.guild,
                                       channel=emu.text_channel)
        message = await interaction.wait_message(timeout=60)
        return message.content if message.ephemeral else "ok"

    async with running_bot(emu, tmp_path, **env):
        speech_endpoint.inject(Fault(status=503, times=100))
        for _ in range(2):
            assert "having problems" in await speak()
        sent = len(speech_endpoint.requests)
        assert "pausing requests" in await speak()
        assert len(speech_endpoint.requests) == sent  # failed fast: nothing reached the endpoint

        speech_endpoint.clear_faults()
        await asyncio.sleep(2.2)  # the cool-down (tests/unit/speech/test_breaker.py checks the rule; this, the wiring)
        assert await speak() == "ok"
        assert await speak() == "ok"
