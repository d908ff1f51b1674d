"""What every command shares: replies (errors ephemeral, nobody pinged), option types and choices, and the
checks on who is in which voice channel. Cogs import these; they never import each other."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.audio.formats import REQUESTABLE_FORMATS
from bot.errors import UserFacingError
from bot.i18n import ENGLISH, language_of, translate, translate_plural
from bot.setting_choices import SpeakOutput
from bot.speech.models import MAX_SPEED, MIN_SPEED

if TYPE_CHECKING:
    from bot.voice.guild_session import VoiceSession

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


class Refused(app_commands.CheckFailure):
    """A check that refuses with its own line (the owner's blocklists, owner-only commands), said in the
    caller's language by the tree's error handler."""

    def __init__(self, reason: UserFacingError) -> None:
        super().__init__(reason.message)
        self.reason = reason


def language_for(interaction: discord.Interaction[Any]) -> str:
    """The language to answer in: the caller's Discord client's, else (for a language without a catalogue) the
    server's, else English. A caller whose client is in English gets English, whatever the server's."""
    own = interaction.locale.value
    language = language_of(own)
    if language != ENGLISH or own.startswith("en"):
        return language
    guild = interaction.guild_locale
    return language_of(guild.value if guild is not None else None)


def tr(interaction: discord.Interaction[Any], message: str, /, **params: object) -> str:
    """``message`` (an English message id of the catalogues) in the caller's language."""
    return translate(language_for(interaction), message, **params)


def tr_plural(
    interaction: discord.Interaction[Any], singular: str, plural: str, count: int, /, **params: object
) -> str:
    """The caller's language's form of ``singular``/``plural`` for ``count``."""
    return translate_plural(language_for(interaction), singular, plural, count, **params)


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Send ``message`` only to the caller, whatever state the interaction is in.

    After a public ``defer()`` the first followup would replace the public "thinking" message and inherit
    its visibility, so the deferred response is deleted first and the error goes out as a separate
    ephemeral followup.
    """
    if not interaction.response.is_done():
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return
    if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("could not delete the deferred response (interaction=%s): %s", interaction.id, exc.status)
    await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def reply_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """The answer to a command that changes something only the caller needs to see (settings, preferences)."""
    await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_MENTIONS)


#: A speed option: the widest range any engine takes; each engine's own range is checked after (no silent clamp).
SpeedOption = app_commands.Range[float, MIN_SPEED, MAX_SPEED]
FORMAT_CHOICES = [app_commands.Choice(name=f.value, value=f.value) for f in REQUESTABLE_FORMATS]


def choices_of(kind: type[StrEnum]) -> list[app_commands.Choice[str]]:
    """A setting's values as Discord choices, named by their value ("on_change" shows as "on change")."""
    return [app_commands.Choice(name=member.value.replace("_", " "), value=member.value) for member in kind]


OUTPUT_CHOICES = choices_of(SpeakOutput)


def voice_choices(voices: tuple[str, ...], current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a voice option: the offered voices containing what was typed (Discord shows 25)."""
    current = current.lower()
    return [app_commands.Choice(name=v, value=v) for v in voices if current in v.lower()][:25]


def caller_voice_channel(interaction: discord.Interaction) -> discord.VoiceChannel | discord.StageChannel:
    """The voice channel the caller is in, or a clear refusal."""
    member = interaction.user
    voice = getattr(member, "voice", None)
    if interaction.guild is None:
        raise UserFacingError("This command only works in a server.")
    if voice is None or voice.channel is None:
        raise UserFacingError("Join a voice channel first, then try again.")
    channel: discord.VoiceChannel | discord.StageChannel = voice.channel
    return channel


def command_channel(interaction: discord.Interaction) -> discord.abc.Messageable | None:
    """The channel the command was used in, where a voice session started by it reports later events."""
    channel = interaction.channel
    return channel if isinstance(channel, discord.abc.Messageable) else None


def require_session_control(interaction: discord.Interaction, session: VoiceSession | None) -> VoiceSession:
    """Only people listening (or moderators who can move members) may steer a session."""
    if session is None or session.channel is None:
        raise UserFacingError("I'm not in a voice channel.")
    member = interaction.user
    voice = getattr(member, "voice", None)
    in_channel = voice is not None and voice.channel is not None and voice.channel.id == session.channel.id
    perms = getattr(member, "guild_permissions", None)
    if not in_channel and not (perms and (perms.move_members or perms.manage_guild)):
        raise UserFacingError("Join {channel} to control what I play.", channel=session.channel.mention)
    return session
