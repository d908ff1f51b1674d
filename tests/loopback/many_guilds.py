"""More guilds for the loopback Discord: each with a text channel, a voice channel with alice in it, and the bot.

Used by the scale test, the voice benchmark and the soak script; call before the bot connects (the guilds
are sent in its GUILD_CREATEs).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_state import VOICE_CHANNEL, Channel, Guild


@dataclass(frozen=True)
class Place:
    guild: Guild
    text: Channel
    voice: Channel


def add_guilds(emu: DiscordEmulator, count: int) -> list[Place]:
    """The emulator's own guild plus ``count - 1`` new ones, all set up alike."""
    build = emu.build
    places = [Place(emu.guild, emu.text_channel, emu.voice_channel)]
    for index in range(count - 1):
        guild = build.guild(f"Guild {index + 2}", owner=emu.owner)
        text = build.channel(guild, "general")
        voice = build.channel(guild, "Voice", type=VOICE_CHANNEL, bitrate=64000, user_limit=0)
        role = build.role(guild, "speechbot", permissions=0)
        for user in (emu.bot_user, emu.owner, emu.user):
            build.member(guild, user, roles=[role] if user is emu.bot_user else [])
        build.join_voice(guild, emu.user, voice)
        emu.guilds.append(guild)
        places.append(Place(guild, text, voice))
    return places


def commands_everywhere(emu: DiscordEmulator) -> None:
    """The bot syncs its commands to ``DEV_GUILD_ID``; make them usable in every guild (as a global sync)."""
    emu.commands[None] = emu.commands[emu.guild.id]
