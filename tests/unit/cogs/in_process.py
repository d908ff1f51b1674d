"""Cogs in-process: the real :class:`~bot.app.SpeechBot`, built by the composition root from doubles (a SQLite
store in a temporary directory, a scripted speech engine), connected over real sockets to the loopback Discord
running in the same event loop. discord.py builds every ``Interaction`` from the INTERACTION_CREATE payload the
loopback sends, exactly as in production; what the bot answers is recorded (and checked against Discord's spec)
by the loopback's REST half."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import SpeechBot
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.config import Settings, load_settings
from bot.discord_endpoints import apply_endpoint_overrides, tls_context
from bot.services import Services, build_services
from bot.speech.errors import SpeechError
from bot.speech.failover import Engine
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SpeechStream, SynthesizedAudio
from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.support.storage_fixtures import migrated_sqlite


def tone(seconds: float = 0.5, sample_rate: int = 24_000) -> bytes:
    """A 440 Hz tone as 16-bit mono PCM: real audio the encoder accepts."""
    samples = int(seconds * sample_rate)
    return b"".join(
        int(8000 * math.sin(2 * math.pi * 440 * n / sample_rate)).to_bytes(2, "little", signed=True)
        for n in range(samples)
    )


@functools.cache
def _tone_as(audio_format: AudioFormat) -> bytes:
    """Half a second of tone encoded as ``audio_format``, encoded once per process (the encoders are deterministic,
    and encoding it for every request cost about 10 ms each)."""
    return encode_pcm(tone(), 24_000, audio_format)


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
        data = _tone_as(request.format)
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


@asynccontextmanager
async def running_in_process(
    emu: DiscordEmulator, data_dir: Path, errors: ErrorRecords | None = None, **env: str
) -> AsyncIterator[InProcessBot]:
    """The bot built by ``build_services`` with the scripted engine, started against ``emu`` and ready (commands
    synced to ``DEV_GUILD_ID``, by default the emulator's guild; ``""``: globally); afterwards closed (services
    in reverse order) and discord.py's endpoints and ``SSL_CERT_FILE`` put back."""
    saved_cert = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = emu.ca_pem_path  # the voice websocket is TLS, as on Discord
    settings = in_process_settings(emu, data_dir, **env)
    saved_base, saved_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    apply_endpoint_overrides(settings.discord_api_base, settings.discord_gateway_url)
    if settings.database_url == f"sqlite:///{data_dir / 'speechbot.db'}" and not (data_dir / "speechbot.db").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(await migrated_sqlite(), data_dir / "speechbot.db")
    store = await Store.open(settings.database_url)
    speech = ScriptedSpeech()
    services = build_services(settings, store, [Engine("scripted", "the test voice", "scripted", speech)])
    bot = SpeechBot(services, force_sync=True, connector=aiohttp.TCPConnector(ssl=tls_context(), limit=0))
    assert settings.discord_token is not None
    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
    try:
        await emu.wait_ready()
        await emu.wait_commands(guild_id=settings.dev_guild_id)
        # Not ``wait_until_ready``: discord.py holds READY back ~2 s waiting for more guilds; interactions are
        # handled from the first GUILD_CREATE on, as in production.
        yield InProcessBot(bot, services, speech, emu, errors or ErrorRecords())
    finally:
        await bot.close()
        await services.close()
        try:
            await asyncio.wait_for(runner, 10)
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved_base, saved_gateway
            if saved_cert is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = saved_cert
