"""What the voice end-to-end tests share: the bot in voice against a speech endpoint, a /speak into voice,
and reading what reached the loopback voice channel (items, words)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.audio.ogg import OggPacketReader
from bot.audio.opus import is_header_packet
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_voice_session import decode_pcm
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.audio_check import recognize, to_16k_mono
from tests.support.bot_process import BotProcess, running_bot

API_KEY = SPEECH_TEST_KEY
PHRASE = "please join the voice channel"
PHRASES = [PHRASE, "hello world", "good morning everyone", "open the door", "thank you for listening"]

@asynccontextmanager
async def voice_bot(
    emu: DiscordEmulator, endpoint: SpeechEndpoint, tmp_path: Path, **env: str
) -> AsyncIterator[BotProcess]:
    """The bot against ``endpoint``, with a short speech timeout so stalls are found quickly."""
    settings = {"SPEECH_API_BASE_URL": endpoint.base_url, "SPEECH_API_KEY": API_KEY, "SPEECH_TIMEOUT": "2", **env}
    async with running_bot(emu, tmp_path, **settings) as process:
        yield process


async def speak_in_voice(emu: DiscordEmulator, text: str, **options: Any):  # noqa: ANN201
    return await emu.invoke(
        "speak", {"text": text, "output": "voice", **options}, user=emu.user, guild=emu.guild,
        channel=emu.text_channel,
    )


def served_audio_packets(data: bytes) -> list[bytes]:
    return [p for p in OggPacketReader().feed(data) if not is_header_packet(p)]


def heard_words(payloads: list[bytes], phrases: list[str] = PHRASES) -> str | None:
    """Which of ``phrases`` the Opus ``payloads`` say (decoded, resampled, recognized), or None."""
    return recognize(to_16k_mono(decode_pcm(payloads)), phrases)


def segments(session) -> list[list[bytes]]:  # noqa: ANN001 - the emulator's VoiceSession
    """Audio packets the listeners heard, split where the player sent its end-of-item silence frames (one list per
    item)."""
    result: list[list[bytes]] = [[]]
    for packet in session.packets:
        if packet.is_silence:
            if result[-1]:
                result.append([])
        elif packet.heard and not packet.is_ogg_header:
            result[-1].append(packet.opus)
    return [segment for segment in result if segment]


async def current_session(emu: DiscordEmulator):  # noqa: ANN201
    sessions = await emu.wait_for(lambda: emu.voice.sessions(emu.guild), timeout=20, what="a voice session")
    return sessions[-1]


async def join(emu: DiscordEmulator) -> str:
    interaction = await emu.invoke("join", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    return (await interaction.wait_message(timeout=30)).content


async def settled(emu: DiscordEmulator, ops_before: int) -> None:
    """Wait until discord.py's own leave (op 4 without a channel) has been sent and answered.

    discord.py answers a forced disconnect with an op 4 of its own; a /join sent in the same few ms would
    race with that answer, which no person typing a command can do.
    """
    await emu.wait_for(
        lambda: any(op == 4 and d.get("channel_id") is None for op, d in emu.gateway_ops[ops_before:]),
        timeout=10,
        what="the bot's own voice leave",
    )
    await asyncio.sleep(0.2)  # the loopback gateway answers op 4 after a 20 ms round trip
