"""Soak: the bot added to and removed from 1,000 servers, one after another, each used while it is there; what
the bot keeps in memory afterwards, against what it kept after a warm-up in the same run.

Run: ``python bench/soak_guilds.py [--guilds 1000] [--voice-every 20]``. The real bot (``SpeechBot`` built by
``bot.services.build_services``, SQLite in a temporary directory, a scripted speech engine) runs in this process
against the loopback Discord. Each cycle: a new server appears (GUILD_CREATE), a member runs ``/speak`` there
(usage totals, settings caches), every ``--voice-every``-th server the bot also joins its voice channel and
leaves again; then the bot is removed from the server (GUILD_DELETE). Memory is measured with ``tracemalloc``
(Python allocations, after a full collection), counting what was allocated by the bot's own code, discord.py
and aiohttp, not by the loopback Discord living in the same process. Target: growth ≤ 5 MiB over 1,000 servers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.app import SpeechBot  # noqa: E402 - after the path set-up
from tests.loopback.discord import DiscordEmulator  # noqa: E402
from tests.unit.cogs.in_process import running_in_process  # noqa: E402

#: Where allocations count as the bot's (its code and the libraries it drives), not the loopback's.
OWN = ("/bot/", "/cogs/", "/discord/", "/aiohttp/", "/sqlalchemy/")


def owned_bytes(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename")
               if any(part in stat.traceback[0].filename for part in OWN)
               and "/tests/" not in stat.traceback[0].filename)


async def cycle(emu: DiscordEmulator, bot: SpeechBot, index: int, voice: bool) -> None:
    guild = emu.add_guild(f"Soak {index}")
    await emu.dispatch("GUILD_CREATE", guild.to_payload())
    await emu.wait_for(lambda: bot.get_guild(guild.id) is not None, timeout=10, what="the guild known")
    spoken = await emu.invoke("speak", {"text": f"hello server {index}"}, guild=guild,
                              channel=guild.channel_named("general"))
    await spoken.wait_message(timeout=10)
    if voice:
        joined = await emu.invoke("join", {}, guild=guild, channel=guild.channel_named("general"))
        await joined.wait_message(timeout=20)
        left = await emu.invoke("leave", {}, guild=guild, channel=guild.channel_named("general"))
        await left.wait_message(timeout=20)
    emu.guilds.remove(guild)
    await emu.dispatch("GUILD_DELETE", {"id": str(guild.id)})
    await emu.wait_for(lambda: bot.get_guild(guild.id) is None, timeout=10, what="the guild forgotten")


async def main(guilds: int, voice_every: int, top: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    tracemalloc.start(1)
    async with DiscordEmulator(token="soak-token") as emu:
        with tempfile.TemporaryDirectory() as data_dir:
            # No audio cache: it is bounded by design (CACHE_MEMORY_MB, CACHE_DISK_MB), not kept per server.
            async with running_in_process(emu, Path(data_dir), DEV_GUILD_ID="", CACHE_MEMORY_MB="0",
                                          CACHE_DISK_MB="0") as running:
                bot, services, speech = running.bot, running.services, running.speech
                warm = 50
                for index in range(warm):
                    await cycle(emu, bot, index, voice=index % voice_every == 0)
                speech.served.clear()
                gc.collect()
                first = tracemalloc.take_snapshot()
                before = owned_bytes(first)
                start = time.perf_counter()
                for index in range(warm, warm + guilds):
                    await cycle(emu, bot, index, voice=index % voice_every == 0)
                    speech.served.clear()  # the double's own record of what it made, not the bot's
                elapsed = time.perf_counter() - start
                await asyncio.sleep(1)  # leaves and ends finish in the background
                gc.collect()
                last = tracemalloc.take_snapshot()
                after = owned_bytes(last)
                growth_by_line = [stat for stat in last.compare_to(first, "lineno")
                                  if any(part in stat.traceback[0].filename for part in OWN)][:top]
                kept = {
                    "guilds known to discord.py": len(bot.guilds),
                    "voice sessions": len(services.voice),
                    "read-aloud readers": len(services.read_aloud._readers),
                    "usage totals cached": len(services.ledger),
                }
    growth = (after - before) / 2**20
    print(f"{guilds} servers added, used and removed in {elapsed:.0f} s "
          f"({guilds // voice_every} with a voice join and leave)")
    print(f"memory held by the bot's code, discord.py, aiohttp, SQLAlchemy: {before / 2**20:.1f} MiB after "
          f"{warm} warm-up servers, {after / 2**20:.1f} MiB after {guilds} more: growth {growth:+.2f} MiB "
          f"({(after - before) / guilds:+.0f} bytes per server; target ≤ 5 MiB)")
    for what, count in kept.items():
        print(f"  {what}: {count}")
    if top:
        print("largest growth by line:")
        for stat in growth_by_line:
            print(f"  {stat.size_diff / 1024:+8.1f} KiB  {stat.count_diff:+6d}  {stat.traceback[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, default=1000)
    parser.add_argument("--voice-every", type=int, default=20)
    parser.add_argument("--top", type=int, default=0, help="also list the lines whose allocations grew most")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.guilds, arguments.voice_every, arguments.top))
