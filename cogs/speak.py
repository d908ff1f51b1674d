"""``/speak``: text in, an audio file out. Adapts the interaction to ``bot.speech``; no logic of its own."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat
from bot.errors import UserFacingError
from bot.replies import NO_MENTIONS
from bot.speech.models import (
    MAX_INPUT_CHARS,
    MAX_INSTRUCTIONS_CHARS,
    BufferedSpeechStream,
    SpeechRequest,
    SpeechStream,
    SynthesizedAudio,
    validate_request,
)
from bot.storage import GuildSettings
from bot.storage.models import SpeakOutput
from bot.voice.player import ErrorNotifier, PlayItem, StreamOpener
from bot.uploads import audio_filename, format_size, speak_caption
from cogs.voice import caller_voice_channel

if TYPE_CHECKING:
    from bot.app import SpeechBot

log = logging.getLogger(__name__)

FORMAT_CHOICES = [app_commands.Choice(name=f.value, value=f.value) for f in REQUESTABLE_FORMATS]
OUTPUT_CHOICES = [
    app_commands.Choice(name="file", value="file"),
    app_commands.Choice(name="voice", value="voice"),
    app_commands.Choice(name="both", value="both"),
]


async def _buffered(audio: SynthesizedAudio) -> SpeechStream:
    return BufferedSpeechStream(audio)


class SpeakCog(commands.Cog):
    def __init__(self, bot: SpeechBot) -> None:
        self.bot = bot

    @app_commands.command(name="speak", description="Turn text into speech: post it as a file or say it in voice.")
    @app_commands.describe(
        text="What to say (up to 4096 characters).",
        voice="Which voice to use.",
        format="Audio file format (opus is small and plays everywhere).",
        speed="Speaking speed, from 0.25 (slow) to 4.0 (fast; 1.5 with Realtime models). Default 1.0.",
        instructions="How to say it, e.g. 'cheerful and quick' (models that support style instructions only).",
        output="Post an audio file, say it in your voice channel, or both. Default: file.",
    )
    @app_commands.choices(format=FORMAT_CHOICES, output=OUTPUT_CHOICES)
    async def speak(
        self,
        interaction: discord.Interaction[SpeechBot],
        text: app_commands.Range[str, 1, MAX_INPUT_CHARS],
        voice: str | None = None,
        format: str | None = None,
        speed: app_commands.Range[float, 0.25, 4.0] | None = None,
        instructions: app_commands.Range[str, 1, MAX_INSTRUCTIONS_CHARS] | None = None,
        output: str | None = None,
    ) -> None:
        # Check and validate before acknowledging, so a refusal is a plain ephemeral reply with nothing sent.
        policy, guild_id, user_id = self.bot.policy, interaction.guild_id, interaction.user.id
        guild = GuildSettings()
        if guild_id is not None:
            roles = [role.id for role in getattr(interaction.user, "roles", ())]
            guild = await policy.check_member(guild_id, user_id, roles)
        options = await policy.options_for(
            guild_id,
            user_id,
            guild,
            voice=voice,
            speed=speed,
            format=format and AudioFormat(format),
            instructions=instructions,
            output=output and SpeakOutput(output),
        )
        request = validate_request(
            SpeechRequest(
                text=text,
                voice=options.voice,
                format=options.format,
                speed=options.speed,
                instructions=options.instructions,
            ),
            self.bot.settings.speech_voices,
            speeds=self.bot.settings.speed_range,
        )
        output = options.output
        channel = caller_voice_channel(interaction) if output in ("voice", "both") else None
        # Only what is sent to the speech service is checked against budgets and counted: not a cache hit.
        if guild_id is not None and not self.bot.speech.has(request):
            await policy.admit(guild_id, user_id, len(request.text), guild)
        await interaction.response.defer(thinking=True)
        session = await self.bot.voice_sessions.join(channel) if channel is not None else None
        caption = speak_caption(interaction.user.mention, request.text)

        if output == "voice":
            assert session is not None
            ahead = session.enqueue(
                PlayItem(
                    request,
                    user_id,
                    on_error=self._error_notifier(interaction),
                    open_stream=self._counted_stream(interaction, request, guild_id, user_id),
                )
            )
            where = f" in {session.channel.mention}" + (f" (after {ahead} other)" if ahead else "")
            await interaction.followup.send(caption + where, allowed_mentions=NO_MENTIONS)
            await self._tell(interaction, options.notice)
            return

        audio, served = await self.bot.speech.read_whole(request)
        origin = served.origin
        if guild_id is not None and origin.sent:
            await policy.record(guild_id, user_id, len(request.text), fallback=served.fallback)
        if note := served.note(request.voice):
            caption += f"\n-# {note}"
        limit = interaction.filesize_limit
        if len(audio.data) > limit:
            raise UserFacingError(
                f"The audio is {format_size(len(audio.data))}, over this server's upload limit of "
                f"{format_size(limit)}. Try shorter text or the opus format."
            )
        if session is not None:
            session.enqueue(
                PlayItem(
                    request,
                    interaction.user.id,
                    on_error=self._error_notifier(interaction),
                    open_stream=lambda: _buffered(audio),
                )
            )
        await interaction.followup.send(
            caption,
            file=discord.File(io.BytesIO(audio.data), filename=audio_filename(audio.format)),
            allowed_mentions=NO_MENTIONS,
        )
        await self._tell(interaction, options.notice)
        log.info(
            "speak done (guild=%s user=%s chars=%d format=%s bytes=%d output=%s audio=%s engine=%s)",
            interaction.guild_id,
            interaction.user.id,
            len(request.text),
            audio.format.value,
            len(audio.data),
            output,
            origin.value,
            served.engine.name,
        )

    @staticmethod
    async def _tell(interaction: discord.Interaction[SpeechBot], notice: str | None) -> None:
        """A notice goes out after the public reply (a first followup would take over the "thinking" message)."""
        if notice:
            await interaction.followup.send(notice, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def _counted_stream(
        self, interaction: discord.Interaction[SpeechBot], request: SpeechRequest, guild_id: int | None, user_id: int
    ) -> StreamOpener:
        """Open the synthesis for the voice player; once the engine accepted it, it counts against budgets
        (unless the audio came from the cache, or a fallback engine said it: then it is only shown in /usage,
        and the requester is told which voice spoke)."""

        async def open_stream() -> SpeechStream:
            served = await self.bot.speech.open_tracked(request)
            if guild_id is not None and served.origin.sent:
                await self.bot.policy.record(guild_id, user_id, len(request.text), fallback=served.fallback)
            if note := served.note(request.voice):
                try:
                    await self._tell(interaction, note)
                except discord.HTTPException as exc:  # the reply is a courtesy; the audio matters more
                    log.info("could not say which voice spoke (interaction=%s): %s", interaction.id, exc.status)
            return served.stream

        return open_stream

    @staticmethod
    def _error_notifier(interaction: discord.Interaction[SpeechBot]) -> ErrorNotifier:
        async def notify(message: str) -> None:
            await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)

        return notify

    @speak.autocomplete("voice")
    async def voice_autocomplete(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        current = current.lower()
        return [
            app_commands.Choice(name=v, value=v) for v in self.bot.settings.speech_voices if current in v.lower()
        ][:25]


async def setup(bot: SpeechBot) -> None:
    await bot.add_cog(SpeakCog(bot))
