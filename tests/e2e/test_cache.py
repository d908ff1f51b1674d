"""End to end: the real bot's audio cache, seen from the speech endpoint (what it received), from Discord
(what was uploaded and played), from ``/metrics``, from the log and from the data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.bot_process import running_bot
from tests.support.metrics import free_port, sample
from tests.support.voice_helpers import served_audio_packets

TEXT = "Hello world, this is a test of the speech system."
SPEECH_PATH = "/v1/audio/speech"


def speech_requests(endpoint: SpeechEndpoint) -> int:
    return sum(1 for r in endpoint.requests if (r.method, r.path) == ("POST", SPEECH_PATH))


async def speak_file(emu: DiscordEmulator, text: str, **options: str) -> bytes:
    interaction = await emu.invoke("speak", {"text": text, **options}, user=emu.user, guild=emu.guild,
                                   channel=emu.text_channel)
    message = await interaction.wait_message(timeout=30)
    assert not message.ephemeral, message.content
    [attachment] = message.attachments
    return attachment.data


async def metrics(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def test_identical_speech_is_requested_once_and_served_again_from_memory_then_from_disk_after_restart(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, port = discord_emulator, free_port()
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "METRICS_PORT": str(port)}
    async with running_bot(emu, tmp_path, **env) as bot:
        first = await speak_file(emu, TEXT)
        second = await speak_file(emu, TEXT)
        assert speech_requests(speech_endpoint) == 1
        assert first == second == speech_endpoint.served[0]

        # in voice too: the cached Ogg Opus is played packet for packet, and nothing is asked
        interaction = await emu.invoke("speak", {"text": TEXT, "output": "voice"}, user=emu.user, guild=emu.guild,
                                       channel=emu.text_channel)
        await interaction.wait_message(timeout=30)
        session = (await emu.wait_for(lambda: emu.voice.sessions(emu.guild), timeout=20, what="voice"))[-1]
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=0.5, timeout=30)
        assert [p.opus for p in session.audio_packets()] == served_audio_packets(first)
        assert speech_requests(speech_endpoint) == 1

        # a hit is no speech request and costs nothing
        usage = emu.invoke("usage", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
        reply = await (await usage).wait_response(timeout=5)
        assert f"{len(TEXT)} characters in 1 request" in reply.data["content"]

        text = await metrics(port)
        assert sample(text, "speechbot_cache_misses_total") == 1
        assert sample(text, "speechbot_cache_hits_total", tier="memory") == 2
        assert sample(text, "speechbot_cache_hits_total", tier="disk") == 0
        assert sample(text, "speechbot_speech_requests_total", outcome="ok") == 1
        assert sample(text, "speechbot_cache_bytes", tier="memory") == len(first)
        assert (sample(text, "speechbot_cache_bytes", tier="disk") or 0) > len(first)
        assert sample(text, "speechbot_cache_entries", tier="disk") == 1
    assert "audio cache: 2 hits (memory 2, disk 0, shared 0), 1 misses, hit rate 67%" in bot.log
    assert "Hello world" not in bot.log

    files = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert len(files) == 1 and files[0].suffix == ".audio"
    assert set(files[0].stem) <= set("0123456789abcdef") and first in files[0].read_bytes()

    async with running_bot(emu, tmp_path, **env):
        assert await speak_file(emu, TEXT) == first
        assert speech_requests(speech_endpoint) == 1
        text = await metrics(port)
        assert sample(text, "speechbot_cache_hits_total", tier="disk") == 1
        assert sample(text, "speechbot_cache_misses_total") == 0
        assert sample(text, "speechbot_speech_requests_total", outcome="ok") is None


async def test_an_identical_request_joins_the_one_on_its_way(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "CACHE_DISK_MB": "0"}
    async with running_bot(emu, tmp_path, **env) as bot:
        speech_endpoint.inject(Fault(chunk_delay=1.0))  # the body takes 3 s to arrive
        first = asyncio.create_task(speak_file(emu, TEXT))
        await emu.wait_for(lambda: speech_requests(speech_endpoint) == 1, timeout=20, what="the first request")
        second = await speak_file(emu, TEXT)
        assert await first == second == speech_endpoint.served[0]
        assert speech_requests(speech_endpoint) == 1
    assert "1 misses" in bot.log and "shared 1" in bot.log
    assert not (tmp_path / "cache").exists()  # CACHE_DISK_MB=0: nothing on disk
