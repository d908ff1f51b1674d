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
from bot.speech.models import MAX_INPUT_CHARS, MAX_INSTRUCTIONS_CHARS, SpeechRequest, synthesize, validate_request
from bot.uploads import audio_filename, format_size, speak_caption

if TYPE_CHECKING:
    from bot.app import SpeechBot

log = logging.getLogger(__name__)

FORMAT_CHOICES = [app_commands.Choice(name=f.value, value=f.value) for f in REQUESTABLE_FORMATS]


class SpeakCog(commands.Cog):
    def __init__(self, bot: SpeechBot) -> None:
        self.bot = bot

    @app_commands.command(name="speak", description="Turn text into speech and post it as an audio file.")
    @app_commands.describe(
        text="What to say (up to 4096 characters).",
        voice="Which voice to use.",
        format="Audio file format (opus is small and plays everywhere).",
        speed="Speaking speed, from 0.25 (slow) to 4.0 (fast). Default 1.0.",
        instructions="How to say it, e.g. 'cheerful and quick' (models that support style instructions only).",
    )
    @app_commands.choices(format=FORMAT_CHOICES)
    async def speak(
        self,
        interaction: discord.Interaction[SpeechBot],
        text: app_commands.Range[str, 1, MAX_INPUT_CHARS],
        voice: str | None = None,
        format: str | None = None,
        speed: app_commands.Range[float, 0.25, 4.0] = 1.0,
        instructions: app_commands.Range[str, 1, MAX_INSTRUCTIONS_CHARS] | None = None,
    ) -> None:
        settings = self.bot.settings
        # Validate before acknowledging, so a refusal is a plain ephemeral reply with nothing sent anywhere.
        request = validate_request(
            SpeechRequest(
                text=text,
                voice=voice or settings.default_voice,
                format=format or settings.default_format,  # type: ignore[arg-type]  # validated below
                speed=speed,
                instructions=instructions,
            ),
            settings.speech_voices,
        )
        await interaction.response.defer(thinking=True)
        audio = await synthesize(self.bot.speech, request)
        limit = interaction.filesize_limit
        if len(audio.data) > limit:
            raise UserFacingError(
                f"The audio is {format_size(len(audio.data))}, over this server's upload limit of "
                f"{format_size(limit)}. Try shorter text or the opus format."
            )
        await interaction.followup.send(
            speak_caption(interaction.user.mention, request.text),
            file=discord.File(io.BytesIO(audio.data), filename=audio_filename(audio.format)),
            allowed_mentions=NO_MENTIONS,
        )
        log.info(
            "speak done (guild=%s user=%s chars=%d format=%s bytes=%d)",
            interaction.guild_id,
            interaction.user.id,
            len(request.text),
            audio.format.value,
            len(audio.data),
        )

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
