"""Read-aloud events: messages, edits and deletions go to ``bot.readaloud``; voice joins may bring the bot.

Thin by design: this module only turns discord.py objects into plain facts and names.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.discord_messages import facts_of, input_builder, names_of
from bot.errors import UserFacingError
from bot.readaloud.reader import ReadAloud
from bot.voice.sessions import VoiceSessions
from bot.voice.stage import audience_notice

if TYPE_CHECKING:
    from bot.app import SpeechBot

log = logging.getLogger(__name__)


class ReadAloudCog(commands.Cog):
    def __init__(self, bot: SpeechBot, read_aloud: ReadAloud, voice: VoiceSessions) -> None:
        self.bot = bot
        self.service = read_aloud
        self.voice = voice

    async def cog_unload(self) -> None:
        await self.service.close()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or message.author == self.bot.user:
            return
        await self.service.on_message(
            message.guild.id, message.id, facts_of(message), names_of(message.author), input_builder(message)
        )

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.guild_id is None or "content" not in payload.data:
            return
        message = payload.message
        await self.service.on_edit(
            payload.guild_id, message.id, facts_of(message), names_of(message.author), input_builder(message)
        )

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            self.service.on_delete(payload.guild_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            self.service.on_delete(payload.guild_id, payload.message_ids)

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        guild = member.guild
        if self.bot.user is not None and member.id == self.bot.user.id:
            if after.channel is None:
                self.service.forget(guild.id)
            return
        if before.channel == after.channel:
            return
        session = self.voice.get(guild.id)
        here = session.channel if session is not None else None
        if here is not None:
            if here in (before.channel, after.channel) and not member.bot:
                await self.service.announce(guild.id, member.id, names_of(member), joined=after.channel == here)
            return
        channel = after.channel
        roles = frozenset(role.id for role in member.roles)
        if channel is None or not await self.service.may_autojoin(guild.id, member.id, is_bot=member.bot,
                                                                   role_ids=roles):
            return
        try:
            session = await self.voice.join(channel)
        except UserFacingError as exc:
            log.info("autojoin refused (guild=%s channel=%s): %s", guild.id, channel.id, exc.message)
            return
        if session.stage_role is not None and (
            notice := audience_notice(session.stage_role, channel, await self.voice.language_of(guild.id))
        ):
            await self.voice.say(session, notice)  # nobody asked, so the stage's chat hears why it is silent


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(ReadAloudCog(bot, bot.services.read_aloud, bot.services.voice))
