"""The speech server's voice list changes while the bot runs (in-process): after a refresh every reader of the
offer sees the new list: ``/speak`` takes a voice the server added and refuses one it removed, ``/voices`` lists
the new ones, a member whose saved voice is gone is told it is no longer offered, and distinct voices are chosen
among the new list."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp

from bot.policy import distinct_voice
from bot.speech.capabilities import VoiceSource
from bot.speech.voices import VoiceRefresher, ask_voice_list
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_server import SpeechEndpoint
from tests.unit.cogs.in_process import running_in_process


async def test_after_a_refresh_speak_and_voices_follow_the_server_list(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with aiohttp.ClientSession() as session, SpeechEndpoint() as endpoint, \
            running_in_process(emu, tmp_path) as running:
        services = running.services
        settings = services.settings  # SPEECH_VOICES unset, no list at start: the model's six, alloy first
        assert "echo" in services.capabilities.voices and "af_heart" not in services.capabilities.voices
        await services.store.set_user_prefs(emu.user.id, None, voice="echo")

        async def ask() -> tuple[tuple[str, ...] | None, str | None]:
            return await ask_voice_list(session, endpoint.base_url, None)

        refresher = VoiceRefresher(services.capabilities, ask, configured=settings.speech_voices,
                                   configured_set=settings.speech_voices_set, default_voice=settings.default_voice)
        endpoint.quirks = dataclasses.replace(endpoint.quirks, voice_list={"voices": ["af_heart", "am_adam"]})
        assert await refresher.refresh()
        assert services.capabilities.voices == ("alloy", "af_heart", "am_adam")
        assert services.capabilities.voice_source is VoiceSource.SERVER

        # the member's saved voice is gone: the server's default, and the existing notice (once)
        interaction = await emu.invoke("speak", {"text": "my saved voice"})
        assert not (await interaction.wait_message()).ephemeral
        notice = await interaction.wait_message(index=1)
        assert notice.ephemeral and "Your voice 'echo' is no longer offered" in notice.content
        assert running.speech.requests[-1].voice == "alloy"
        assert (await services.store.get_user_prefs(emu.user.id, None)).voice is None

        added = await (await emu.invoke("speak", {"text": "new voice", "voice": "af_heart"})).wait_message()
        assert not added.ephemeral and running.speech.requests[-1].voice == "af_heart"

        removed = await (await emu.invoke("speak", {"text": "old voice", "voice": "echo"})).wait_message()
        assert removed.ephemeral and "Unknown voice 'echo'" in removed.content and "af_heart" in removed.content
        assert running.speech.requests[-1].voice == "af_heart"  # nothing sent for the refused voice

        listed = await (await emu.invoke("voices", {}, user=emu.user, guild=emu.guild,
                                         channel=emu.text_channel)).wait_message()
        assert "af_heart" in listed.content and "am_adam" in listed.content and "echo" not in listed.content

        # distinct voices: a member without a voice of their own gets one of the new list
        await services.store.update_guild_settings(emu.guild.id, distinct_voices=True)
        guild = await services.store.get_guild_settings(emu.guild.id)
        options = await services.policy.options_for(emu.guild.id, emu.user.id, guild)
        assert options.voice == distinct_voice(emu.user.id, ("alloy", "af_heart", "am_adam"))
