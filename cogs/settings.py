"""``/settings``: a server's text-to-speech configuration, for moderators.

Each subcommand covers one area and changes only the options given; the ephemeral reply lists every change as
"old → new". Values are checked by ``bot.storage`` (ranges) and here (what only Discord knows: voices on
offer, channels the bot can see, roles). Clearing an optional value is ``/settings reset setting:…``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.formats import AudioFormat
from bot.errors import UserFacingError
from bot.interactions import (
    FORMAT_CHOICES,
    NO_MENTIONS,
    OUTPUT_CHOICES,
    SpeedOption,
    choices_of,
    language_for,
    reply_ephemeral,
    tr,
    voice_choices,
)
from bot.permissions import require_moderator
from bot.policy import check_speed, check_voice
from bot.setting_choices import (
    CodeMode,
    EmojiMode,
    HoldMode,
    LinkMode,
    NameMode,
    SayName,
    SpeakOutput,
    SpeechLanguage,
)
from bot.settings_view import describe_changes, labels, language_name, render_capabilities, render_sections
from bot.speech.models import MAX_INPUT_CHARS, MAX_INSTRUCTIONS_CHARS
from bot.storage import GuildSettings, GuildSettingsChanges, Store
from bot.storage.rules import MAX_BUDGET_CHARS, MAX_HOLD_SECONDS

if TYPE_CHECKING:
    from bot.app import SpeechBot
    from bot.config import Settings
    from bot.speech.capabilities import EndpointCapabilities

Budget = app_commands.Range[int, 1, MAX_BUDGET_CHARS]
#: Each language by its own name (the same in every language: whoever looks for theirs finds it).
LANGUAGE_CHOICES = [
    app_commands.Choice(name=language_name(language.value), value=language.value) for language in SpeechLanguage
]


def check_readable(channel: discord.TextChannel) -> None:
    """Read-aloud needs to see the channel; refuse one the bot cannot see rather than go quiet there."""
    if not channel.permissions_for(channel.guild.me).view_channel:
        raise UserFacingError(
            "I can't see {channel}: give me the View Channel permission there first.", channel=channel.mention
        )


def check_role(role: discord.Role) -> None:
    if role.is_default():
        raise UserFacingError("Pick a role other than @everyone.")


class SettingsCog(commands.Cog):
    settings = app_commands.Group(
        name="settings",
        description="Text-to-speech settings for this server (moderators).",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, store: Store, config: Settings, capabilities: EndpointCapabilities) -> None:
        self.store = store
        self._config = config
        self.capabilities = capabilities  # what the bot's speech server was found to do

    @property
    def config(self) -> Settings:
        """The bot's own settings (``settings`` is the command group), with the voices offered now."""
        return self.capabilities.offered(self._config)

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """Moderators only (``discord.py`` types this for any client; every interaction here is the bot's)."""
        return await require_moderator(interaction)

    async def _apply(self, interaction: discord.Interaction[SpeechBot], changes: GuildSettingsChanges) -> None:
        """Store ``changes`` and say exactly what changed (nothing given is a refusal, not a silent no-op)."""
        if not changes:
            raise UserFacingError("Give at least one option to change.")
        assert interaction.guild_id is not None
        before = await self.store.get_guild_settings(interaction.guild_id)
        after = await self.store.update_guild_settings(interaction.guild_id, **changes)
        await self._report(interaction, before, after, changes)

    async def _report(
        self, interaction: discord.Interaction[SpeechBot], before: GuildSettings, after: GuildSettings,
        fields: Iterable[str],
    ) -> None:
        lines = describe_changes(self.config, before, after, fields, language_for(interaction))
        await reply_ephemeral(interaction, tr(interaction, "Settings changed:") + "\n" + _bullets(lines))

    @settings.command(name="show", description="Show every setting of this server.")
    async def show(self, interaction: discord.Interaction[SpeechBot]) -> None:
        assert interaction.guild is not None
        current = await self.store.get_guild_settings(interaction.guild.id)
        language = language_for(interaction)
        embed = discord.Embed(
            title=tr(interaction, "Text-to-speech settings of {server}", server=interaction.guild.name)
        )
        for title, text in render_sections(self.config, current, language):
            embed.add_field(name=title, value=text, inline=False)
        embed.add_field(name=tr(interaction, "Speech server (the bot's, for every server)"),
                        value=render_capabilities(self.config, self.capabilities, language), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @settings.command(name="reset", description="Put one setting, or all of them, back to the default.")
    @app_commands.describe(setting="The setting to reset; leave empty to reset everything.")
    async def reset(self, interaction: discord.Interaction[SpeechBot], setting: str | None = None) -> None:
        assert interaction.guild_id is not None
        known = labels(self.config)
        store = self.store
        before = await store.get_guild_settings(interaction.guild_id)
        if setting is None:
            after = await store.reset_guild_settings(interaction.guild_id)
            changed = [field for field in known if getattr(before, field) != getattr(after, field)]
            if not changed:
                await reply_ephemeral(
                    interaction, tr(interaction, "Every setting already had its default value; nothing changed.")
                )
                return
            lines = describe_changes(self.config, before, after, changed, language_for(interaction))
            await reply_ephemeral(
                interaction,
                tr(interaction, "Reset to the defaults (the dictionary, mutes and usage are kept):") + "\n"
                + _bullets(lines),
            )
            return
        if setting not in known:
            raise UserFacingError("Unknown setting: pick one from the list.")
        after = await store.reset_guild_settings(interaction.guild_id, setting)
        await self._report(interaction, before, after, [setting])

    @reset.autocomplete("setting")
    async def _setting_names(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        current = current.lower()
        names = labels(self.config, language_for(interaction)).items()
        return [app_commands.Choice(name=label, value=field) for field, label in names if current in label.lower()][:25]

    @settings.command(name="defaults", description="What /speak and read-aloud use when a member picks nothing.")
    @app_commands.describe(
        voice="Default voice.",
        speed="Default speed, 0.25 (slow) to 4.0 (fast; 1.5 with Realtime models).",
        format="Default audio file format for /speak.",
        instructions="Default speaking style, e.g. 'calm and clear'.",
        output="What /speak does by default: post a file, speak in voice, or both.",
    )
    @app_commands.choices(format=FORMAT_CHOICES, output=OUTPUT_CHOICES)
    async def defaults(
        self,
        interaction: discord.Interaction[SpeechBot],
        voice: str | None = None,
        speed: SpeedOption | None = None,
        format: str | None = None,
        instructions: app_commands.Range[str, 1, MAX_INSTRUCTIONS_CHARS] | None = None,
        output: str | None = None,
    ) -> None:
        changes: GuildSettingsChanges = {}
        if voice is not None:
            check_voice(self.config, voice)
            changes["default_voice"] = voice
        if speed is not None:
            check_speed(self.config, speed)
            changes["default_speed"] = speed
        if format is not None:
            changes["default_format"] = AudioFormat(format)
        if instructions is not None:
            changes["default_instructions"] = instructions
        if output is not None:
            changes["speak_output"] = SpeakOutput(output)
        await self._apply(interaction, changes)

    @defaults.autocomplete("voice")
    async def _voices(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return voice_choices(self.config.speech_voices, current)

    @settings.command(name="read-channels", description="Add or remove a channel whose messages are read aloud.")
    @app_commands.describe(add="A channel to read aloud.", remove="A channel to stop reading.")
    async def read_channels(
        self,
        interaction: discord.Interaction[SpeechBot],
        add: discord.TextChannel | None = None,
        remove: discord.TextChannel | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if add is None and remove is None:
            raise UserFacingError("Give a channel to add or to remove.")
        if add is not None:
            check_readable(add)
        current = (await self.store.get_guild_settings(interaction.guild_id)).read_channel_ids
        channels = (set(current) | {add.id} if add else set(current)) - ({remove.id} if remove else set())
        await self._apply(interaction, {"read_channel_ids": channels})

    @settings.command(name="autojoin", description="Join the voice channel of whoever writes in a read channel.")
    async def autojoin(self, interaction: discord.Interaction[SpeechBot], enabled: bool) -> None:
        await self._apply(interaction, {"autojoin": enabled})

    @settings.command(name="names", description="Whether and how read-aloud says who wrote a message.")
    @app_commands.describe(
        say="When to say the author's name before their message.",
        repeat_window="Seconds after which the same author's name is said again.",
        name_mode="Which name to say.",
    )
    @app_commands.choices(say=choices_of(SayName), name_mode=choices_of(NameMode))
    async def names(
        self,
        interaction: discord.Interaction[SpeechBot],
        say: str | None = None,
        repeat_window: app_commands.Range[int, 0, 3600] | None = None,
        name_mode: str | None = None,
    ) -> None:
        changes: GuildSettingsChanges = {}
        if say is not None:
            changes["say_name"] = SayName(say)
        if repeat_window is not None:
            changes["name_repeat_window"] = repeat_window
        if name_mode is not None:
            changes["name_mode"] = NameMode(name_mode)
        await self._apply(interaction, changes)

    @settings.command(name="text", description="How read-aloud treats long messages, emoji, links and code.")
    @app_commands.describe(
        max_length="Longest message read, in characters (longer ones are cut).",
        repeat_cap="How many times a repeated character is read ('sooooo' → 'sooo').",
        emoji="Read emoji names, or skip them.",
        links="Say a link's domain, or skip it.",
        code="Read code blocks, or skip them.",
    )
    @app_commands.choices(emoji=choices_of(EmojiMode), links=choices_of(LinkMode), code=choices_of(CodeMode))
    async def text(
        self,
        interaction: discord.Interaction[SpeechBot],
        max_length: app_commands.Range[int, 1, MAX_INPUT_CHARS] | None = None,
        repeat_cap: app_commands.Range[int, 1, 50] | None = None,
        emoji: str | None = None,
        links: str | None = None,
        code: str | None = None,
    ) -> None:
        changes: GuildSettingsChanges = {}
        if max_length is not None:
            changes["max_message_chars"] = max_length
        if repeat_cap is not None:
            changes["max_repeat_chars"] = repeat_cap
        if emoji is not None:
            changes["emoji_mode"] = EmojiMode(emoji)
        if links is not None:
            changes["link_mode"] = LinkMode(links)
        if code is not None:
            changes["code_mode"] = CodeMode(code)
        await self._apply(interaction, changes)

    @settings.command(name="reading", description="Whose messages read-aloud reads, and how long they are held.")
    @app_commands.describe(
        skip_bots="Skip messages from bots.",
        require_voice="Read only authors who are in the bot's voice channel.",
        optout_prefix="Messages starting with this are not read (up to 5 characters; 'none' for no prefix).",
        hold="Seconds a message waits before it is read, so moderators can delete it (0 to 5).",
        hold_mode="early: speech is requested during the hold (faster); strict: nothing is sent before it ends.",
    )
    @app_commands.choices(hold_mode=choices_of(HoldMode))
    async def reading(
        self,
        interaction: discord.Interaction[SpeechBot],
        skip_bots: bool | None = None,
        require_voice: bool | None = None,
        optout_prefix: app_commands.Range[str, 1, 5] | None = None,
        hold: app_commands.Range[float, 0.0, MAX_HOLD_SECONDS] | None = None,
        hold_mode: str | None = None,
    ) -> None:
        changes: GuildSettingsChanges = {}
        if hold is not None:
            changes["hold_seconds"] = hold
        if hold_mode is not None:
            changes["hold_mode"] = HoldMode(hold_mode)
        if skip_bots is not None:
            changes["skip_bots"] = skip_bots
        if require_voice is not None:
            changes["require_author_in_voice"] = require_voice
        if optout_prefix is not None:
            changes["optout_prefix"] = "" if optout_prefix.lower() == "none" else optout_prefix
        await self._apply(interaction, changes)

    @settings.command(
        name="language", description="The language read-aloud speaks around messages: names, links, emoji."
    )
    @app_commands.describe(language="“Alice said”, links, attachments, emoji names and join/leave announcements.")
    @app_commands.choices(language=LANGUAGE_CHOICES)
    async def language(self, interaction: discord.Interaction[SpeechBot], language: str) -> None:
        await self._apply(interaction, {"language": SpeechLanguage(language)})

    @settings.command(name="roles", description="Roles that may, may not, or moderate text-to-speech.")
    @app_commands.describe(
        required="Only members with this role may use text-to-speech.",
        deny="Members with this role may not use text-to-speech.",
        moderator="Members with this role may change these settings, the dictionary and mutes.",
    )
    async def roles(
        self,
        interaction: discord.Interaction[SpeechBot],
        required: discord.Role | None = None,
        deny: discord.Role | None = None,
        moderator: discord.Role | None = None,
    ) -> None:
        for role in (required, deny, moderator):
            if role is not None:
                check_role(role)
        changes: GuildSettingsChanges = {}
        if required is not None:
            changes["required_role_id"] = required.id
        if deny is not None:
            changes["deny_role_id"] = deny.id
        if moderator is not None:
            changes["moderator_role_id"] = moderator.id
        await self._apply(interaction, changes)

    @settings.command(name="timeouts", description="When the bot leaves a voice channel.")
    @app_commands.describe(
        idle="Seconds with nothing to read before leaving.",
        alone="Seconds with nobody else in the channel before leaving.",
    )
    async def timeouts(
        self,
        interaction: discord.Interaction[SpeechBot],
        idle: app_commands.Range[int, 10, 86_400] | None = None,
        alone: app_commands.Range[int, 0, 86_400] | None = None,
    ) -> None:
        changes: GuildSettingsChanges = {}
        if idle is not None:
            changes["idle_timeout"] = idle
        if alone is not None:
            changes["alone_timeout"] = alone
        await self._apply(interaction, changes)

    @settings.command(name="distinct-voices", description="Give each member who chose no voice a voice of their own.")
    @app_commands.describe(enabled="On: each such member always gets the same voice, picked from their ID.")
    async def distinct_voices(self, interaction: discord.Interaction[SpeechBot], enabled: bool) -> None:
        await self._apply(interaction, {"distinct_voices": enabled})

    @settings.command(name="announce", description="Say when members join or leave the bot's voice channel.")
    async def announce(self, interaction: discord.Interaction[SpeechBot], enabled: bool) -> None:
        await self._apply(interaction, {"announce_joins": enabled})

    @settings.command(name="backlog", description="Speak faster while many messages wait to be read.")
    @app_commands.describe(speedup="Highest speed-up, 1.0 (off) to 1.5.")
    async def backlog(
        self, interaction: discord.Interaction[SpeechBot], speedup: app_commands.Range[float, 1.0, 1.5]
    ) -> None:
        await self._apply(interaction, {"backlog_speedup": speedup})

    @settings.command(name="budget", description="Limit the characters sent to the speech service.")
    @app_commands.describe(
        daily="Characters per day (UTC) for the whole server.",
        monthly="Characters per month (UTC) for the whole server.",
        per_member="Characters per minute for each member.",
    )
    async def budget(
        self,
        interaction: discord.Interaction[SpeechBot],
        daily: Budget | None = None,
        monthly: Budget | None = None,
        per_member: Budget | None = None,
    ) -> None:
        changes: GuildSettingsChanges = {}
        if daily is not None:
            changes["daily_char_budget"] = daily
        if monthly is not None:
            changes["monthly_char_budget"] = monthly
        if per_member is not None:
            changes["user_chars_per_minute"] = per_member
        await self._apply(interaction, changes)


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(SettingsCog(bot.services.store, bot.services.settings, bot.services.capabilities))
