"""Stage channels: the bot joins in the audience, and nobody hears it until it is a speaker.

Discord puts everyone who joins a stage in the audience (their voice state says ``suppress``), and its voice
server forwards nothing an audience member sends. So after joining a stage the bot makes itself a speaker when it
may (Mute Members in the stage: it is a stage moderator), else raises its hand (Request to Speak) and waits for a
moderator to invite it; the session's player holds its queue until the gateway says the bot is a speaker
(:meth:`bot.voice.guild_session.VoiceSession.set_suppressed`). Both go through discord.py's public API
(``Member.edit(suppress=False)`` and ``Member.request_to_speak()``: Discord's "Modify Current User Voice State").

Stages run without DAVE (Discord end-to-end encrypts non-stage calls only): the voice server says so in its
session description, and :mod:`bot.voice.connection` lets audio out at once.
"""

from __future__ import annotations

import logging
from enum import Enum

import discord

from bot.i18n import translate

log = logging.getLogger(__name__)


class StageRole(Enum):
    """Where the bot stands on a stage after trying to become a speaker."""

    SPEAKER = "speaker"  # a speaker, or Discord is making it one (the voice state update follows)
    REQUESTED = "requested"  # hand raised: a stage moderator must invite it
    AUDIENCE = "audience"  # may neither speak nor ask to: only a moderator's invitation helps


def is_suppressed(member: discord.Member, channel: discord.abc.Connectable) -> bool:
    """``member`` is in ``channel``'s audience: whatever it sends is heard by nobody."""
    voice = member.voice
    return voice is not None and voice.channel is not None and voice.channel.id == getattr(channel, "id", None) \
        and voice.suppress


async def become_speaker(channel: discord.StageChannel) -> StageRole:
    """Leave the audience of ``channel`` (which the bot has joined) if it may, else ask to speak.

    A refusal from Discord (permissions changed meanwhile) is logged with Discord's reason and the next way is
    tried; the caller words the outcome for people.
    """
    me = channel.guild.me
    if not is_suppressed(me, channel):
        return StageRole.SPEAKER
    permissions = channel.permissions_for(me)
    if permissions.mute_members:
        try:
            await me.edit(suppress=False)
        except discord.HTTPException as exc:
            log.warning("could not become a speaker (guild=%s channel=%s): %s %s", channel.guild.id, channel.id,
                        exc.status, exc.text)
        else:
            log.info("became a speaker on the stage (guild=%s channel=%s)", channel.guild.id, channel.id)
            return StageRole.SPEAKER
    if permissions.request_to_speak:
        voice = me.voice
        if voice is not None and voice.requested_to_speak_at is not None:
            return StageRole.REQUESTED  # the hand is up already
        try:
            await me.request_to_speak()
        except discord.HTTPException as exc:
            log.warning("could not ask to speak (guild=%s channel=%s): %s %s", channel.guild.id, channel.id,
                        exc.status, exc.text)
        else:
            log.info("asked to speak on the stage (guild=%s channel=%s)", channel.guild.id, channel.id)
            return StageRole.REQUESTED
    return StageRole.AUDIENCE


def audience_notice(role: StageRole, channel: discord.abc.GuildChannel, language: str) -> str | None:
    """What to tell people when the bot joined ``channel`` but cannot be heard yet; None for a speaker.
    ``language``: the caller's for a reply, the server's for a post in its channel."""
    if role is StageRole.REQUESTED:
        return "✋ " + translate(
            language,
            "I'm in {channel} and I've asked to speak; a stage moderator must invite me. I'll start reading once "
            "I'm a speaker.",
            channel=channel.mention,
        )
    if role is StageRole.AUDIENCE:
        return translate(
            language,
            "I'm in the audience of {channel} and may not ask to speak there (I need Request to Speak, or Mute "
            "Members to become a speaker myself). A stage moderator can invite me to speak.",
            channel=channel.mention,
        )
    return None


def moved_to_audience_notice(channel: discord.abc.GuildChannel, language: str) -> str:
    """Said (in the server's ``language``) in the session's text channel when a stage moderator sends the bot
    back to the audience."""
    return "🔇 " + translate(
        language,
        "A stage moderator moved me to the audience of {channel}, so I stopped speaking. I'll go on when I'm "
        "invited to speak again.",
        channel=channel.mention,
    )
