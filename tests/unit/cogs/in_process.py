"""Cogs in-process: the real :class:`~bot.app.SpeechBot`, built by the composition root from doubles (a SQLite
store in a temporary directory, a scripted speech engine), connected over real sockets to the loopback Discord
running in the same event loop. discord.py builds every ``Interaction`` from the INTERACTION_CREATE payload the
loopback sends, exactly as in production; what the bot answers is recorded (and checked against Discord's spec)
by the loopback's REST half."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import SpeechBot
from bot.audio.encode import encode_pcm
from bot.config import Settings, load_settings
from bot.services import Services
from bot.speech.errors import SpeechError
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SpeechStream, SynthesizedAudio
from bot.storage import Store
from tests.loopback.discord import DiscordEmulator


def tone(seconds: float = 0.5, sample_rate: int = 24_000) -> bytes:
    """A 440 Hz tone as 16-bit mono PCM: real audio the encoder accepts."""
    samples = int(seconds * sample_rate)
    return b"".join(
        int(8000 * math.sin(2 * math.pi * 440 * n / sample_rate)).to_bytes(2, "little", signed=True)
        for n in range(samples)
    )


@dataclass(eq=False)
class ScriptedSpeech:
    """A speech engine double: answers every request with real audio in the requested format, or with the
    error a test queued; keeps the requests it was given."""

    name: str = "scripted"
    requests: list[SpeechRequest] = field(default_factory=list)
    served: list[bytes] = field(default_factory=list)
    errors: list[SpeechError] = field(default_factory=list)

    async def open(self, request: SpeechRequest) -> SpeechStream:
        self.requests.append(request)
        if self.errors:
            raise self.errors.pop(0)
        data = encode_pcm(tone(), 24_000, request.format)
        self.served.append(data)
        return BufferedSpeechStream(SynthesizedAudio(data, request.format))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass(eq=False)
class InProcessBot:
    bot: SpeechBot
    services: Services
    speech: ScriptedSpeech
    emu: DiscordEmulator
    errors: ErrorRecords

    @property
    def store(self) -> Store:
        return self.services.store


def in_process_settings(emu: DiscordEmulator, data_dir: Path, **env: str) -> Settings:
    return load_settings(
        {
            **emu.env(),
            "DEV_GUILD_ID": str(emu.guild.id),
            "DATA_DIR": str(data_dir),
            "SPEECH_BACKEND": "openai",
            "SPEECH_API_BASE_URL": "http://127.0.0.1:9/v1",  # never called: the engine is the scripted double
            "SPEECH_API_KEY": "sk-unused",
            "SPEECH_FALLBACK": "none",
            **env,
        }
    )


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
