"""discord.py messages as the plain facts and inputs the core layers work on (``bot.readaloud``, ``bot.text``):
the only place that reads a ``discord.Message`` for speech, shared by read-aloud and the "Speak this message"
menu so both say a message the same way."""

from __future__ import annotations

import discord

from bot.readaloud.filters import MessageFacts
from bot.readaloud.utterance import InputBuilder, Names, spoken_name
from bot.setting_choices import NameMode
from bot.text import MessageInput


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
