"""The real bot's /metrics, /healthz and /readyz while it serves /speak and plays in voice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.bot_process import running_bot
from tests.support.metrics import assert_gateway_latency_measured, free_port, sample


async def test_metrics_and_health_follow_what_the_bot_does(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, port = discord_emulator, free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "METRICS_PORT": str(port)}
    async with running_bot(emu, tmp_path, **env), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as health:
            assert health.status == 200
        readiness: list[int] = []

        async def ready() -> bool:
            async with http.get(f"{base}/readyz") as response:
                readiness.append(response.status)
                return response.status == 200

        for _ in range(100):  # ready once the guilds have streamed in (discord.py's guild_ready_timeout)
            if await ready():
                break
            await asyncio.sleep(0.1)
        assert readiness[-1] == 200 and set(readiness) <= {200, 503}

        async def speak(text: str, **options: str) -> None:
            interaction = await emu.invoke("speak", {"text": text, **options}, user=emu.user, guild=emu.guild,
                                           channel=emu.text_channel)
            await interaction.wait_message(timeout=30)

        await speak("Hello world.")
        speech_endpoint.inject(Fault(status=401))
        await speak("Good morning everyone.")
        await speak("Thank you for listening.", output="voice")
        session = await emu.wait_for(lambda: emu.voice.sessions(emu.guild), timeout=20, what="voice")
        await session[-1].wait_packets(10, timeout=20)

        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        assert sample(text, "speechbot_speech_requests_total", outcome="ok", status="200") == 2
        assert sample(text, "speechbot_speech_requests_total", outcome="error", status="401") == 1
        errors = [line for line in text.splitlines() if line.startswith("speechbot_speech_errors_total{")]
        assert len(errors) == 1 and 'kind="auth"' in errors[0] and errors[0].endswith(" 1.0")  # the 401, only
        assert sample(text, "speechbot_speech_characters_total") == len("Hello world.Thank you for listening.")
        assert sample(text, "speechbot_speech_time_to_first_byte_seconds_count") == 2
        assert sample(text, "speechbot_voice_time_to_first_packet_seconds_count") == 1
        assert sample(text, "speechbot_voice_sessions") == 1
        assert_gateway_latency_measured(text, shard="0")
        assert "Hello world" not in text and SPEECH_TEST_KEY not in text
