"""A bot in more voice channels than aiohttp's default connection pool (100) holds.

Each voice connection keeps a websocket open for its whole life. A connector with aiohttp's default
``limit=100`` makes the hundredth join wait for a free connection forever (found by bench/bench_voice.py at
N=100); the bot must use an unbounded pool, as discord.py itself does by default.

Shutdown too: 105 joins and 105 leaves are more gateway sends than discord.py allows a minute (110), so
leaving every channel the ordinary way would make SIGTERM wait ~55 s. Past the budget the bot closes the
voice connections without the gateway op (Discord drops them with the session); ``running_bot`` requires a
clean exit within 20 s of SIGTERM.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.loopback.discord import DiscordEmulator
from tests.loopback.many_guilds import add_guilds, commands_everywhere
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.voice_helpers import voice_bot

GUILDS = 105


async def test_joins_and_plays_in_more_voice_channels_than_a_default_connection_pool(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    places = add_guilds(emu, GUILDS)
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_IDLE_TIMEOUT="600"):
        commands_everywhere(emu)
        interactions = []
        for place in places:
            interactions.append(await emu.invoke("join", {}, user=emu.user, guild=place.guild, channel=place.text))
        replies = await asyncio.gather(*(i.wait_message(timeout=60) for i in interactions))
        refused = [
            (place.guild.id, r.content)
            for place, r in zip(places, replies, strict=False)
            if "Joined" not in r.content
        ]
        op4s = {gid: [op.d for op in emu.gateway.ops if op.op == 4 and int(op.d["guild_id"]) == gid]
                for gid, _ in refused}
        sent = {gid: [(e["s"], e["t"], (e["d"] or {}).get("channel_id")) for gs in emu.gateway.sessions.values()
                      for e in gs.events if e["t"] in ("VOICE_STATE_UPDATE", "VOICE_SERVER_UPDATE")
                      and int((e["d"] or {}).get("guild_id", 0)) == gid] for gid, _ in refused}
        assert not refused, (refused[:3], emu.voice.ignored_joins[:3], op4s, sent)
        assert all(emu.voice_connected(place.guild) for place in places)

        # The last channel joined still plays.
        guild, text = places[-1].guild, places[-1].text
        interaction = await emu.invoke("speak", {"text": "hello world", "output": "voice"}, user=emu.user,
                                       guild=guild, channel=text)
        await interaction.wait_message(timeout=30)
        session = emu.voice_session(guild)
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=0.5, timeout=30)
        assert session.check_stream() == []
