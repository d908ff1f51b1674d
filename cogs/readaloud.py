"""Read-aloud events: messages, edits and deletions go to ``bot.readaloud``; voice joins may bring the bot.

Thin by design: this module only turns discord.py objects into plain facts and names.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.errors import UserFacingError
from bot.readaloud.filters import MessageFacts
from bot.readaloud.reader import ReadAloud
from bot.readaloud.utterance import InputBuilder, Names, spoken_name
from bot.setting_choices import NameMode
from bot.text import MessageInput
from bot.voice.sessions import VoiceSessions

if TYPE_CHECKING:
    from bot.app import SpeechBot

log = logging.getLogger(__name__)


def names_of(user: discord.abc.User) -> Names:
    return Names(display=user.display_name, nickname=getattr(user, "nick", None), username=user.name)


def spoken_content(message: discord.Message) -> str:
    """A forward has no text of its own: what it forwards is in its first snapshot."""
    if message.content or not message.message_snapshots:
        return message.content
    return message.message_snapshots[0].content


def facts_of(message: discord.Message) -> MessageFacts:
    author = message.author
    voice = getattr(author, "voice", None)
    return MessageFacts(
        channel_id=message.channel.id,
        author_id=author.id,
        content=message.content,
        is_bot=author.bot,
        is_webhook=message.webhook_id is not None,
        is_silent=message.flags.suppress_notifications,
        is_system=message.is_system(),
        role_ids=frozenset(role.id for role in getattr(author, "roles", ())),
        author_voice_channel_id=voice.channel.id if voice is not None and voice.channel is not None else None,
    )


def input_builder(message: discord.Message) -> InputBuilder:
    """The plain message, once the reader knows how to call its author."""

    def build(author_name: str, mode: NameMode) -> MessageInput:
        def name(user: discord.abc.User) -> str:
            return spoken_name(names_of(user), mode, None)

        guild = message.guild
        channels = {}
        for channel_id in message.raw_channel_mentions:
            channel = guild.get_channel_or_thread(channel_id) if guild is not None else None
            if channel is not None:
                channels[channel_id] = channel.name
        reference = message.reference
        replied = reference.resolved if reference is not None else None
        poll = message.poll
        return MessageInput(
            content=spoken_content(message),
            author_name=author_name,
            mentions={user.id: name(user) for user in message.mentions},
            role_mentions={role.id: role.name for role in message.role_mentions},
            channel_mentions=channels,
            attachments=[(a.filename, a.content_type) for a in message.attachments],
            is_voice_message=message.flags.voice,
            sticker_names=[sticker.name for sticker in message.stickers],
            has_poll=poll is not None,
            poll_question=poll.question if poll is not None else None,
            reply_to_author=name(replied.author) if isinstance(replied, discord.Message) else None,
            is_forward=reference is not None and reference.type is discord.MessageReferenceType.forward,
            embeds=len(message.embeds),
            created_at=message.created_at,
        )

    return build


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
            await self.voice.join(channel)
        except UserFacingError as exc:
            log.info("autojoin refused (guild=%s channel=%s): %s", guild.id, channel.id, exc.message)


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(ReadAloudCog(bot, bot.services.read_aloud, bot.services.voice))
