"""``/speak``: text in, an audio file out. Adapts the interaction to ``bot.speech``; no logic of its own."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.formats import REQUESTABLE_FORMATS
from bot.errors import UserFacingError
from bot.replies import NO_MENTIONS
from bot.speech.models import (
    MAX_INPUT_CHARS,
    MAX_INSTRUCTIONS_CHARS,
    BufferedSpeechStream,
    SpeechRequest,
    SpeechStream,
    SynthesizedAudio,
    synthesize,
    validate_request,
)
from bot.voice.player import ErrorNotifier, PlayItem
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
        speed="Speaking speed, from 0.25 (slow) to 4.0 (fast). Default 1.0.",
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
        speed: app_commands.Range[float, 0.25, 4.0] = 1.0,
        instructions: app_commands.Range[str, 1, MAX_INSTRUCTIONS_CHARS] | None = None,
        output: str = "file",
    ) -> None:
        settings = self.bot.settings
        # Validate before acknowledging, so a refusal is a plain ephemeral reply with nothing sent anywhere.
        request = validate_request(
            SpeechRequest(
                text=text,
                voice=voice or settings.default_voice,
                format=format or settings.default_format,  # type: ignore[arg-type]  # validated here
                speed=speed,
                instructions=instructions,
            ),
            settings.speech_voices,
        )
        channel = caller_voice_channel(interaction) if output in ("voice", "both") else None
        await interaction.response.defer(thinking=True)
        session = await self.bot.voice_sessions.join(channel) if channel is not None else None
        caption = speak_caption(interaction.user.mention, request.text)

        if output == "voice":
            assert session is not None
            ahead = session.enqueue(
                PlayItem(request, interaction.user.id, on_error=self._error_notifier(interaction))
            )
            where = f" in {session.channel.mention}" + (f" (after {ahead} other)" if ahead else "")
            await interaction.followup.send(caption + where, allowed_mentions=NO_MENTIONS)
            return

        audio = await synthesize(self.bot.speech, request)
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
        log.info(
            "speak done (guild=%s user=%s chars=%d format=%s bytes=%d output=%s)",
            interaction.guild_id,
            interaction.user.id,
            len(request.text),
            audio.format.value,
            len(audio.data),
            output,
        )

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
