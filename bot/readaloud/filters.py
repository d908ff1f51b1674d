"""Which messages are read aloud, and who may make the bot join: pure functions of plain facts and settings.

The Discord adapter gathers the facts; the store lookups (mutes) happen in one place in the reader. Every
refusal has a reason, so tests and debug logs say why a message stayed silent (the text itself never appears).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from bot.storage import GuildSettings


class Skip(StrEnum):
    NOT_IN_VOICE = "the bot is not in a voice channel"
    NOT_READ_CHANNEL = "not a read channel"
    SYSTEM = "a system message"
    BOT = "sent by a bot or webhook"
    SILENT = "an @silent message"
    OPTED_OUT = "starts with the opt-out prefix"
    AUTHOR_NOT_IN_VOICE = "the author is not in the bot's voice channel"
    DENIED_ROLE = "the author has the denied role"
    MISSING_ROLE = "the author lacks the required role"
    MUTED = "the author is muted"
    BLOCKED = "the server or the author is blocked by the bot's owner"
    EMPTY = "nothing to read"


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the decision needs to know about a message, without its text beyond the first characters."""

    channel_id: int
    author_id: int
    content: str
    is_bot: bool = False
    is_webhook: bool = False
    is_silent: bool = False
    is_system: bool = False
    role_ids: frozenset[int] = frozenset()
    author_voice_channel_id: int | None = None


def read_channels(settings: GuildSettings, bot_voice_channel_id: int | None) -> Collection[int]:
    """The configured read channels; with none configured, the text chat of the bot's voice channel."""
    if settings.read_channel_ids:
        return settings.read_channel_ids
    return () if bot_voice_channel_id is None else (bot_voice_channel_id,)


def skip_reason(facts: MessageFacts, settings: GuildSettings, bot_voice_channel_id: int | None) -> Skip | None:
    """Why ``facts`` is not read (None: read it, unless the author is muted or the text cleans to nothing)."""
    if bot_voice_channel_id is None:
        return Skip.NOT_IN_VOICE
    if facts.channel_id not in read_channels(settings, bot_voice_channel_id):
        return Skip.NOT_READ_CHANNEL
    if facts.is_system:
        return Skip.SYSTEM
    if settings.skip_bots and (facts.is_bot or facts.is_webhook):
        return Skip.BOT
    if facts.is_silent:
        return Skip.SILENT
    if settings.optout_prefix and facts.content.lstrip().startswith(settings.optout_prefix):
        return Skip.OPTED_OUT
    # Bots and webhooks are never in voice: when they are allowed at all, the voice rule does not apply.
    if settings.require_author_in_voice and not (facts.is_bot or facts.is_webhook) and (
        facts.author_voice_channel_id != bot_voice_channel_id
    ):
        return Skip.AUTHOR_NOT_IN_VOICE
    return role_refusal(facts.role_ids, settings)


def role_refusal(role_ids: frozenset[int], settings: GuildSettings) -> Skip | None:
    """The deny role wins over everything; a required role, when set, must be held."""
    if settings.deny_role_id is not None and settings.deny_role_id in role_ids:
        return Skip.DENIED_ROLE
    if settings.required_role_id is not None and settings.required_role_id not in role_ids:
        return Skip.MISSING_ROLE
    return None


def may_autojoin(settings: GuildSettings, *, is_bot: bool, role_ids: frozenset[int]) -> bool:
    """A member joining voice brings the bot along when autojoin is on, a read channel is set and their
    messages could be read (mutes are checked by the caller)."""
    if not settings.autojoin or not settings.read_channel_ids:
        return False
    if is_bot and settings.skip_bots:
        return False
    return role_refusal(role_ids, settings) is None
