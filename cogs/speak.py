"""``/speak``: text in, an audio file or speech in voice out. Adapts the interaction to ``bot.speech_service``."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.formats import AudioFormat
from bot.audio.transcode import transcode
from bot.audio.waveform import voice_message_shape
from bot.discord_internals import send_voice_message
from bot.discord_messages import input_builder, names_of
from bot.errors import UserFacingError
from bot.i18n import Text
from bot.interactions import (
    FORMAT_CHOICES,
    NO_MENTIONS,
    OUTPUT_CHOICES,
    SpeedOption,
    caller_voice_channel,
    command_channel,
    language_for,
    tr,
    tr_plural,
    voice_choices,
)
from bot.readaloud.reader import ReadAloud
from bot.setting_choices import SpeakOutput
from bot.speech.models import (
    MAX_INPUT_CHARS,
    MAX_INSTRUCTIONS_CHARS,
    BufferedSpeechStream,
    SpeechStream,
    SynthesizedAudio,
)
from bot.speech_service import Admitted, SpeechService
from bot.uploads import audio_filename, format_size, speak_caption
from bot.voice.player import ErrorNotifier, PlayItem, StreamOpener
from bot.voice.sessions import VoiceSessions

if TYPE_CHECKING:
    from bot.app import SpeechBot
    from bot.config import Settings

log = logging.getLogger(__name__)


async def _buffered(audio: SynthesizedAudio) -> SpeechStream:
    return BufferedSpeechStream(audio)


class SpeakCog(commands.Cog):
    def __init__(self, bot: SpeechBot, speaking: SpeechService, voice: VoiceSessions, read_aloud: ReadAloud) -> None:
        self.bot = bot
        self.speaking = speaking
        self.voice = voice
        self.read_aloud = read_aloud
        in_servers = app_commands.AppCommandContext(guild=True)
        #: Message context menus (Apps → …): discord.py cannot declare them inside a cog, so they are added here.
        self.menus = [
            app_commands.ContextMenu(name="Speak this message", callback=self.speak_message,
                                     allowed_contexts=in_servers),
            app_commands.ContextMenu(name="Speak with their voice", callback=self.speak_with_their_voice,
                                     allowed_contexts=in_servers),
        ]

    @property
    def settings(self) -> Settings:
        """The bot's settings with the voices offered now (refreshed while the bot runs)."""
        return self.speaking.settings

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    async def speak_message(self, interaction: discord.Interaction[SpeechBot], message: discord.Message) -> None:
        """Apps → Speak this message: the message as read-aloud would say it, in the invoker's voice."""
        await self._speak_message(interaction, message, their_voice=False)

    async def speak_with_their_voice(
        self, interaction: discord.Interaction[SpeechBot], message: discord.Message
    ) -> None:
        """Apps → Speak with their voice: the same, in the voice, speed and style its author chose."""
        await self._speak_message(interaction, message, their_voice=True)

    async def _speak_message(
        self, interaction: discord.Interaction[SpeechBot], message: discord.Message, *, their_voice: bool
    ) -> None:
        """Into the invoker's voice channel when the bot is there with them, otherwise as a file; the same
        policy as ``/speak`` (mutes, roles, budgets, rate) applies to the invoker."""
        guild_id = interaction.guild_id
        if guild_id is None:
            raise UserFacingError("This only works in a server.")
        author = message.author
        if await self.speaking.blocked(None, author.id):  # a blocked user is never read, on request neither
            raise UserFacingError("I don't read that user's messages.")
        text = await self.read_aloud.message_text(guild_id, author.id, names_of(author), input_builder(message))
        if not text:
            raise UserFacingError("That message has nothing I can read aloud.")
        chosen = await self.speaking.voice_of(guild_id, author.id) if their_voice else None
        session = self.voice.get(guild_id)
        caller = getattr(getattr(interaction.user, "voice", None), "channel", None)
        together = session is not None and session.channel is not None and caller is not None \
            and caller.id == session.channel.id
        admitted = await self.speaking.admit(
            guild_id,
            interaction.user.id,
            [role.id for role in getattr(interaction.user, "roles", ())],
            text=text,
            voice=chosen.voice if chosen else None,
            speed=chosen.speed if chosen else None,
            instructions=chosen.instructions if chosen else None,
            output=SpeakOutput.VOICE if together else SpeakOutput.FILE,
        )
        queued = False
        try:
            queued = await self._speak(interaction, admitted)
        finally:
            if not queued:
                self.speaking.release(admitted)

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
        speed: SpeedOption | None = None,
        instructions: app_commands.Range[str, 1, MAX_INSTRUCTIONS_CHARS] | None = None,
        output: str | None = None,
    ) -> None:
        # Admit before acknowledging, so a refusal is a plain ephemeral reply with nothing sent anywhere.
        admitted = await self.speaking.admit(
            interaction.guild_id,
            interaction.user.id,
            [role.id for role in getattr(interaction.user, "roles", ())],
            text=text,
            voice=voice,
            format=AudioFormat(format) if format else None,
            speed=speed,
            instructions=instructions,
            output=SpeakOutput(output) if output else None,
        )
        queued = False
        try:
            queued = await self._speak(interaction, admitted)
        finally:
            if not queued:  # spoken (settled) or refused: what is left of the reservation goes back
                self.speaking.release(admitted)

    async def _speak(self, interaction: discord.Interaction[SpeechBot], admitted: Admitted) -> bool:
        """Speak ``admitted``; True when it was handed to the voice player (which settles or releases it)."""
        request, output = admitted.request, admitted.output
        if output is SpeakOutput.VOICE_MESSAGE:
            await self._voice_message(interaction, admitted)
            return False
        channel = caller_voice_channel(interaction) if output in (SpeakOutput.VOICE, SpeakOutput.BOTH) else None
        await interaction.response.defer(thinking=True)
        session = None
        if channel is not None:
            session = await self.voice.join(channel, text_channel=command_channel(interaction))
        caption = speak_caption(interaction.user.mention, request.text)

        if output == SpeakOutput.VOICE:
            assert session is not None and channel is not None
            where = (session.channel or channel).mention
            # The reply says only what is true: queued (or getting ready), then playing once the audio really
            # starts, or not played when it fails (the requester also gets the reason, privately).
            posted: asyncio.Future[discord.WebhookMessage | None] = asyncio.get_running_loop().create_future()
            notify = self._error_notifier(interaction)

            async def started() -> None:
                if (message := await posted) is not None:
                    playing = tr(interaction, "playing in {channel}", channel=where)
                    await message.edit(content=f"{caption} — {playing}", allowed_mentions=NO_MENTIONS)

            async def failed(reason: Text) -> None:
                await notify(reason)
                if posted.done() and (message := posted.result()) is not None:
                    not_played = tr(interaction, "not played in {channel}", channel=where)
                    await message.edit(content=f"{caption} — {not_played}", allowed_mentions=NO_MENTIONS)

            ahead = session.enqueue(
                PlayItem(
                    request,
                    interaction.user.id,
                    on_error=failed,
                    open_stream=self._counted_stream(interaction, admitted),
                    on_done=lambda: self.speaking.release(admitted),
                    on_start=started,
                )
            )
            if session.waiting_to_speak:  # a stage's audience: nobody would hear it yet
                status = tr(interaction, "waiting in {channel} until a stage moderator invites me to speak",
                            channel=where)
            elif ahead:
                status = tr_plural(interaction, "queued in {channel} (after {count} other)",
                                   "queued in {channel} (after {count} others)", ahead, channel=where)
            else:
                status = tr(interaction, "getting ready in {channel}", channel=where)
            try:
                posted.set_result(await interaction.followup.send(
                    f"{caption} — {status}", allowed_mentions=NO_MENTIONS, wait=True))
            except BaseException:
                posted.set_result(None)  # nothing to edit later; the item still plays
                raise
            await self._tell(interaction, _notices(interaction, admitted.notices))
            return True

        audio, served = await self.speaking.read_whole(admitted)
        if note := served.note(request.voice, language_for(interaction)):
            caption += f"\n-# {note}"
        limit = interaction.filesize_limit
        if len(audio.data) > limit:
            raise UserFacingError(
                "The audio is {size}, over this server's upload limit of {limit}. Try shorter text or the opus format.",
                size=format_size(len(audio.data)), limit=format_size(limit),
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
        await self._tell(interaction, _notices(interaction, admitted.notices))
        log.info(
            "speak done (guild=%s user=%s chars=%d format=%s bytes=%d output=%s audio=%s engine=%s)",
            interaction.guild_id,
            interaction.user.id,
            len(request.text),
            audio.format.value,
            len(audio.data),
            output,
            served.origin.value,
            served.engine.name,
        )
        return False

    async def _voice_message(self, interaction: discord.Interaction[SpeechBot], admitted: Admitted) -> None:
        """Post the audio as Discord's native voice message in the channel (it cannot carry text, so the
        deferred reply becomes the caption saying who asked)."""
        if not interaction.app_permissions.send_voice_messages:
            raise UserFacingError(
                "I need the Send Voice Messages permission in this channel to post a voice message. Ask a moderator, "
                "or choose another output."
            )
        channel_id = interaction.channel_id
        assert channel_id is not None
        await interaction.response.defer(thinking=True)
        audio, served = await self.speaking.read_whole(admitted)
        data = audio.data if audio.format is AudioFormat.OPUS else await asyncio.to_thread(
            transcode, audio.data, audio.format, AudioFormat.OPUS)
        duration, waveform = await asyncio.to_thread(voice_message_shape, data)
        try:
            await send_voice_message(self.bot, channel_id, data, duration=duration, waveform=waveform)
        except discord.Forbidden as exc:
            log.info("voice message refused (guild=%s channel=%s): %s %s", interaction.guild_id, channel_id,
                     exc.code, exc.text)
            raise UserFacingError(
                "Discord did not let me post a voice message in this channel. Check my Send Voice Messages and "
                "Attach Files permissions here, or choose another output."
            ) from None
        below = tr(interaction, "voice message below")
        caption = speak_caption(interaction.user.mention, admitted.request.text) + f" — {below}"
        if note := served.note(admitted.request.voice, language_for(interaction)):
            caption += f"\n-# {note}"
        await interaction.edit_original_response(content=caption, allowed_mentions=NO_MENTIONS)
        await self._tell(interaction, _notices(interaction, admitted.notices))

    @staticmethod
    async def _tell(interaction: discord.Interaction[SpeechBot], notice: str | None) -> None:
        """A notice goes out after the public reply (a first followup would take over the "thinking" message)."""
        if notice:
            await interaction.followup.send(notice, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def _counted_stream(self, interaction: discord.Interaction[SpeechBot], admitted: Admitted) -> StreamOpener:
        """Open the synthesis when the voice player gets to it; the speech service counts it, and the requester
        is told when a fallback engine spoke instead."""

        async def open_stream() -> SpeechStream:
            served = await self.speaking.open(admitted)
            if note := served.note(admitted.request.voice, language_for(interaction)):
                try:
                    await self._tell(interaction, note)
                except discord.HTTPException as exc:  # the reply is a courtesy; the audio matters more
                    log.info("could not say which voice spoke (interaction=%s): %s", interaction.id, exc.status)
            return served.stream

        return open_stream

    @staticmethod
    def _error_notifier(interaction: discord.Interaction[SpeechBot]) -> ErrorNotifier:
        async def notify(message: Text) -> None:
            await interaction.followup.send(
                message.render(language_for(interaction)), ephemeral=True, allowed_mentions=NO_MENTIONS
            )

        return notify

    @speak.autocomplete("voice")
    async def voice_autocomplete(
        self, interaction: discord.Interaction[SpeechBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return voice_choices(self.settings.speech_voices, current)


def _notices(interaction: discord.Interaction[SpeechBot], notices: tuple[Text, ...]) -> str | None:
    """What to tell the requester once, in their language (None: nothing)."""
    language = language_for(interaction)
    return " ".join(notice.render(language) for notice in notices) or None


async def setup(bot: SpeechBot) -> None:
    services = bot.services
    await bot.add_cog(SpeakCog(bot, services.speaking, services.voice, services.read_aloud))
