"""A stock discord.py process finds and trusts the loopback Discord (gateway, REST and the voice server's TLS)
through the environment alone, as the bot process does (the doubles themselves: tests/loopback_tests/)."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.loopback.discord import DiscordEmulator

BOT_PROCESS = """
import os, sys, discord, yarl
discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])

class Bot(discord.Client):
    async def on_ready(self):
        vc = await self.get_channel(int(sys.argv[1])).connect(timeout=10)
        await vc.disconnect()
        await self.close()

Bot(intents=discord.Intents.default(), guild_ready_timeout=0.1).run(os.environ["DISCORD_TOKEN"], log_handler=None)
"""


async def test_a_bot_process_trusts_the_voice_server_through_env(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BOT_PROCESS, str(emu.voice_channel.id), env={**os.environ, **emu.env()},
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert emu.voice_session().mode is not None and not emu.voice_connected()
