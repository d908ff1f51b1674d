"""Member commands: ``/voice set|show|reset``, ``/voices``, ``/usage`` and ``/forgetme``.

A member's choices apply in one server or everywhere (server choices win); the server's defaults fill in the
rest. Every reply is ephemeral: preferences are nobody else's business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.i18n import N_
from bot.interactions import NO_MENTIONS, SpeedOption, language_for, reply_ephemeral, tr, tr_plural, voice_choices
from bot.permissions import caller_is_moderator
from bot.policy import check_speed, check_voice
from bot.settings_view import render_usage
from bot.speech.models import MAX_INSTRUCTIONS_CHARS
from bot.storage import GuildSettings, Store, UserPrefs, UserPrefsChanges
from bot.storage.rules import MAX_SPOKEN_NAME_CHARS
from bot.usage import utc_today
from bot.voice_picker import VoicePicker

if TYPE_CHECKING:
    from bot.app import SpeechBot
    from bot.config import Settings
    from bot.speech_service import SpeechService

SCOPE_CHOICES = [
    app_commands.Choice(name="this server", value="server"),
    app_commands.Choice(name="everywhere", value="everywhere"),
]
#: Rows shown by ``/usage`` to moderators (the biggest spenders first).
USAGE_TOP = 15
#: ``/voice voices`` lists voices up to this many characters, then says how many more there are.
MAX_VOICES_TEXT = 1700


def _scope(interaction: discord.Interaction, scope: str) -> tuple[int | None, str]:
    """The stored scope (a server ID, or None for everywhere) and how to name it."""
    if scope == "everywhere" or interaction.guild_id is None:
        return None, N_("everywhere")
    return interaction.guild_id, N_("in this server")


def _describe(interaction: discord.Interaction, prefs: UserPrefs) -> list[str]:
    """The saved choices, one line each, in the caller's language."""
    lines = []
    if prefs.voice is not None:
        lines.append(tr(interaction, "• Voice: {voice}", voice=prefs.voice))
    if prefs.speed is not None:
        lines.append(tr(interaction, "• Speed: {speed}×", speed=prefs.speed))
    if prefs.instructions:
        lines.append(tr(interaction, "• Instructions: “{instructions}”", instructions=prefs.instructions))
    if prefs.spoken_name is not None:
        lines.append(tr(interaction, "• Spoken name: {name}", name=prefs.spoken_name))
    return lines


class PreferencesCog(commands.Cog):
    voice = app_commands.Group(name="voice", description="Your own voice, speed, style and spoken name.")

    def __init__(self, store: Store, speaking: SpeechService) -> None:
        self.store = store
        self.speaking = speaking

    @property
    def settings(self) -> Settings:
        """The bot's settings with the voices offered now (refreshed while the bot runs)."""
        return self.speaking.settings

    async def _guild_settings(self, interaction: discord.Interaction[SpeechBot]) -> GuildSettings:
        if interaction.guild_id is None:
            return GuildSettings()
        return await self.store.get_guild_settings(interaction.guild_id)

    @voice.command(name="set", description="Choose how text-to-speech sounds for you.")
    @app_commands.describe(
        voice="Your voice.",
        speed="Your speed, 0.25 (slow) to 4.0 (fast; 1.5 with Realtime models).",
        instructions="Your speaking style, e.g. 'calm and clear'.",
        name="The name read aloud before your messages.",
        scope="For this server only, or everywhere (server choices win over 'everywhere').",
    )
    @app_commands.choices(scope=SCOPE_CHOICES)
    async def set_(
        self,
        interaction: discord.Interaction[SpeechBot],
        voice: str | None = None,
        speed: SpeedOption | None = None,
        instructions: app_commands.Range[str, 1, MAX_INSTRUCTIONS_CHARS] | None = None,
        name: app_commands.Range[str, 1, MAX_SPOKEN_NAME_CHARS] | None = None,
        scope: str = "server",
    ) -> None:
        if voice is not None:
            check_voice(self.settings, voice)
        if speed is not None:
            check_speed(self.settings, speed)
        changes: UserPrefsChanges = {}
        if voice is not None:
            changes["voice"] = voice
        if speed is not None:
            changes["speed"] = speed
        if instructions is not None:
            changes["instructions"] = instructions
        if name is not None:
            changes["spoken_name"] = name
        guild_id, where = _scope(interaction, scope)
        if changes:
            await self.store.set_user_prefs(interaction.user.id, guild_id, **changes)
        saved = (
            "\n".join([tr(interaction, "Saved {where}:", where=tr(interaction, where)),
                       *_describe(interaction, UserPrefs(**changes))])
            if changes
            else ""
        )
        if voice is not None:
            await reply_ephemeral(interaction, saved)
            return
        await self._offer_voices(interaction, guild_id, where, saved)

    async def _offer_voices(
        self, interaction: discord.Interaction[SpeechBot], guild_id: int | None, where: str, saved: str
    ) -> None:
        """No voice given: a menu of the voices on offer (``bot.voice_picker``); a choice is saved in the scope
        asked for, like ``/voice set voice:``."""
        user_id = interaction.user.id
        current = (await self.speaking.options_for(
            interaction.guild_id, user_id, await self._guild_settings(interaction))).voice

        async def save(voice: str) -> str:
            if refusal := await self.speaking.blocked(interaction.guild_id, user_id):  # blocked since the menu
                raise UserFacingError(refusal)
            check_voice(self.settings, voice)  # the owner may have stopped offering it since the menu was shown
            await self.store.set_user_prefs(user_id, guild_id, voice=voice)
            return tr(interaction, "Saved {where}: your voice is now **{voice}**.", where=tr(interaction, where),
                      voice=voice)

        picker = VoicePicker(owner_id=user_id, voices=self.settings.speech_voices, current=current, save=save,
                             language=language_for(interaction))
        picker.origin = interaction
        content = f"{saved}\n\n{picker.prompt()}" if saved else picker.prompt()
        await interaction.response.send_message(content, view=picker, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @set_.autocomplete("voice")
    async def _voices(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return voice_choices(self.settings.speech_voices, current)

    @voice.command(name="show", description="Show what text-to-speech uses for you here, and why.")
    async def show(self, interaction: discord.Interaction[SpeechBot]) -> None:
        guild = await self._guild_settings(interaction)
        user_id = interaction.user.id
        options = await self.speaking.options_for(interaction.guild_id, user_id, guild)
        prefs = await self.store.get_user_prefs(user_id, interaction.guild_id)

        def source(mine: object, server: object) -> str:
            if mine is not None:
                return tr(interaction, "your choice")
            return tr(interaction, "server default") if server is not None else tr(interaction, "bot default")

        server_speed = None if guild.default_speed == GuildSettings().default_speed else guild.default_speed
        lines = [
            tr(interaction, "**Your text-to-speech here:**"),
            tr(interaction, "• Voice: {voice} ({source})", voice=options.voice,
               source=source(prefs.voice, guild.default_voice)),
            tr(interaction, "• Speed: {speed}× ({source})", speed=options.speed,
               source=source(prefs.speed, server_speed)),
            tr(interaction, "• Instructions: {instructions} ({source})",
               instructions=options.instructions or tr(interaction, "none"),
               source=source(prefs.instructions, guild.default_instructions)),
            tr(interaction, "• Spoken name: {name}",
               name=prefs.spoken_name or tr(interaction, "your name in this server")),
        ]
        language = language_for(interaction)
        notice = "\n\n" + " ".join(text.render(language) for text in options.notices) if options.notices else ""
        await reply_ephemeral(interaction, "\n".join(lines) + notice)

    @voice.command(name="reset", description="Forget your choices for this server, or those for everywhere.")
    @app_commands.choices(scope=SCOPE_CHOICES)
    async def reset(self, interaction: discord.Interaction[SpeechBot], scope: str = "server") -> None:
        guild_id, where = _scope(interaction, scope)
        place = tr(interaction, where)
        if await self.store.reset_user_prefs(interaction.user.id, guild_id):
            await reply_ephemeral(interaction, tr(interaction, "Deleted your voice, speed, instructions and spoken "
                                                  "name {where}.", where=place))
        else:
            await reply_ephemeral(interaction, tr(interaction, "You had no choices saved {where}; nothing changed.",
                                                  where=place))

    @app_commands.command(name="voices", description="List the voices you can choose from.")
    async def voices(self, interaction: discord.Interaction[SpeechBot]) -> None:
        guild = await self._guild_settings(interaction)
        options = await self.speaking.options_for(interaction.guild_id, interaction.user.id, guild)
        default = guild.default_voice if guild.default_voice in self.settings.speech_voices else None
        marks = {self.settings.default_voice: tr(interaction, "bot default")}
        if default:
            marks[default] = tr(interaction, "server default")
        marked: list[str] = []
        plain: list[str] = []
        for voice in self.settings.speech_voices:
            notes = [marks[voice]] if voice in marks else []
            notes += [tr(interaction, "yours here")] if voice == options.voice else []
            (marked if notes else plain).append(f"• {voice}" + (f" ({', '.join(notes)})" if notes else ""))
        # a server may list hundreds of voices; a message holds 2,000 characters
        lines = list(marked)
        for line in plain:
            if sum(len(shown) + 1 for shown in lines) + len(line) > MAX_VOICES_TEXT:
                break
            lines.append(line)
        hidden = len(marked) + len(plain) - len(lines)
        if hidden:
            lines.append(tr_plural(interaction, "…and {count} more: type in /voice set's voice option to search it.",
                                   "…and {count} more: type in /voice set's voice option to search them.", hidden))
        lines = [tr(interaction, "**Voices:**"), *lines, tr(interaction, "Choose yours with /voice set.")]
        await reply_ephemeral(interaction, "\n".join(lines))

    @app_commands.command(name="usage", description="This server's speech usage against its budgets.")
    @app_commands.guild_only()
    async def usage(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild_id is not None
        store, guild_id, today = self.store, interaction.guild_id, utc_today()
        month_start = today.replace(day=1)
        per_member = None
        if await caller_is_moderator(interaction):
            per_member = await store.usage_by_user(guild_id, month_start, limit=USAGE_TOP)
        report = render_usage(
            await store.get_guild_settings(guild_id),
            await store.usage_since(guild_id, today),
            await store.usage_since(guild_id, month_start),
            mine=await store.usage_since(guild_id, month_start, user_id=interaction.user.id),
            per_member=per_member,
            language=language_for(interaction),
        )
        await reply_ephemeral(interaction, report)

    @app_commands.command(name="forgetme", description="Delete everything this bot stores about you.")
    async def forgetme(self, interaction: discord.Interaction[SpeechBot]) -> None:
        await self.speaking.forget_user(interaction.user.id)
        await reply_ephemeral(
            interaction,
            tr(interaction,
               "Deleted everything stored about you, in every server:\n"
            "• your voice, speed, instructions and spoken name (per server and everywhere)\n"
            "• any mutes of you, and your name on mutes you made\n"
            "• your name on dictionary entries you added (the entries belong to their servers and stay)\n"
            "• your name on usage counts: they now count for an anonymous user, so servers' budgets stay right\n"
               "Message text and audio are never stored."),
        )


async def setup(bot: SpeechBot) -> None:
    services = bot.services
    await bot.add_cog(PreferencesCog(services.store, services.speaking))
