"""``/join``, ``/leave``, ``/skip``, ``/clear`` and the voice events that keep sessions in step with Discord."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.interactions import (
    NO_MENTIONS,
    caller_voice_channel,
    command_channel,
    language_for,
    require_session_control,
    send_ephemeral,
    tr,
    tr_plural,
)
from bot.voice.sessions import VoiceSessions
from bot.voice.stage import audience_notice

if TYPE_CHECKING:
    from bot.app import SpeechBot

log = logging.getLogger(__name__)


class VoiceCog(commands.Cog):
    def __init__(
        self, bot: SpeechBot, voice: VoiceSessions, forget_guild: Callable[[int], Awaitable[None]]
    ) -> None:
        self.bot = bot
        self.voice = voice
        self.forget_guild = forget_guild

    @app_commands.command(name="join", description="Bring the bot into your voice channel or onto your stage.")
    @app_commands.guild_only()
    async def join(self, interaction: discord.Interaction[SpeechBot]) -> None:
        channel = caller_voice_channel(interaction)
        await interaction.response.defer(thinking=True)
        session = await self.voice.join(channel, text_channel=command_channel(interaction), speak_up=True)
        joined = session.channel or channel
        if session.stage_role is not None and (
            notice := audience_notice(session.stage_role, joined, language_for(interaction))
        ):
            await send_ephemeral(interaction, notice)  # on a stage, not heard yet: say why, to the caller
            return
        joined_text = tr(interaction, "Joined {channel}.", channel=joined.mention)
        await interaction.followup.send(f"🔊 {joined_text}", allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="leave", description="Make the bot leave the voice channel.")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild_id is not None
        require_session_control(interaction, self.voice.get(interaction.guild_id))
        await interaction.response.defer(thinking=True)
        await self.voice.leave(interaction.guild_id, reason="/leave")
        await interaction.followup.send("👋 " + tr(interaction, "Left the voice channel."),
                                        allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="skip", description="Stop what is being read now and go on with the queue.")
    @app_commands.guild_only()
    async def skip(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild_id is not None
        session = require_session_control(interaction, self.voice.get(interaction.guild_id))
        if not session.player.skip():
            raise UserFacingError("Nothing is playing.")
        await interaction.response.send_message("⏭️ " + tr(interaction, "Skipped."), allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="clear", description="Drop everything waiting in the queue.")
    @app_commands.guild_only()
    async def clear(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild_id is not None
        session = require_session_control(interaction, self.voice.get(interaction.guild_id))
        dropped = session.player.clear()
        await interaction.response.send_message(
            "🧹 " + tr_plural(interaction, "Cleared {count} waiting item.", "Cleared {count} waiting items.", dropped),
            allowed_mentions=NO_MENTIONS,
        )

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        bot_itself = self.bot.user is not None and member.id == self.bot.user.id
        if bot_itself and after.channel is not None and before.suppress != after.suppress:
            # On a stage: made a speaker (its own doing or a moderator's), or sent (or moved) to the audience.
            await self.voice.on_suppress_changed(member.guild.id, after.suppress)
        # The bot's own moves count too: after one, the people around it are different.
        if before.channel != after.channel:
            self.voice.on_members_changed(member.guild.id)
            bot_moved = self.bot.user is not None and member.id == self.bot.user.id
            if bot_moved and before.channel is not None and after.channel is not None:
                await self.voice.on_moved(member.guild.id, after.channel.id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.forget_guild(guild.id)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        session = self.voice.get(channel.guild.id)
        if session is not None and session.channel is not None and session.channel.id == channel.id:
            await self.voice.leave(channel.guild.id, reason="channel deleted")


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(VoiceCog(bot, bot.services.voice, bot.services.forget_guild))
