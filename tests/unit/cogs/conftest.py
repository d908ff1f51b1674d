"""The in-process bot fixture (see :mod:`tests.unit.cogs.in_process`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import SpeechBot
from bot.discord_endpoints import apply_endpoint_overrides, tls_context
from bot.services import build_services
from bot.speech.failover import Engine
from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.unit.cogs.in_process import ErrorRecords, InProcessBot, ScriptedSpeech, in_process_settings


@pytest_asyncio.fixture
async def in_process_bot(
    discord_emulator: DiscordEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[InProcessBot]:
    """The bot, ready, with its commands synced to the emulator's guild; closed (services in reverse order) and
    discord.py's endpoints put back afterwards. A test that provokes an error on purpose takes it out of
    ``errors.records``; any other error logged fails the test."""
    emu = discord_emulator
    monkeypatch.setenv("SSL_CERT_FILE", emu.ca_pem_path)  # the voice websocket is TLS, as on Discord
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    settings = in_process_settings(emu, tmp_path)
    saved_base, saved_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    apply_endpoint_overrides(settings.discord_api_base, settings.discord_gateway_url)
    store = await Store.open(settings.database_url)
    speech = ScriptedSpeech()
    services = build_services(settings, store, [Engine("scripted", "the test voice", "scripted", speech)])
    bot = SpeechBot(services, force_sync=True, connector=aiohttp.TCPConnector(ssl=tls_context(), limit=0))
    assert settings.discord_token is not None
    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
    try:
        await emu.wait_ready()
        await emu.wait_commands(guild_id=emu.guild.id)
        # Not ``wait_until_ready``: discord.py holds READY back ~2 s waiting for more guilds; interactions are
        # handled from the first GUILD_CREATE on, as in production.
        yield InProcessBot(bot, services, speech, emu, errors)
    finally:
        await bot.close()
        await services.close()
        try:
            await asyncio.wait_for(runner, 10)
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved_base, saved_gateway
            logging.getLogger().removeHandler(errors)
    # What a user's mistake or a service's failure may never cause: an error with a traceback in the log.
    assert not errors.records, "errors logged:\n" + "\n".join(r.getMessage() for r in errors.records)
