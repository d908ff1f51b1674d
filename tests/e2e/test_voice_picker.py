"""End to end: ``/voice set`` without a voice on the real bot process — the menu, a choice saved and heard in the
next request to the loopback speech server, and a tampered click by someone else refused."""

from __future__ import annotations

from bot.voice_picker import NOT_YOURS, SELECT_ID
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.bot_fixtures import speak
from tests.support.bot_process import BotProcess


async def test_a_voice_chosen_in_the_menu_is_the_voice_of_the_next_speak(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    asked = await emu.invoke("voice set", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    menu = await asked.wait_message(timeout=30)
    assert menu.ephemeral and menu.components

    stranger = await emu.select(menu, SELECT_ID, ["fable"], user=emu.other_user, tampered=True)
    assert (await stranger.wait_message(timeout=30)).content == NOT_YOURS

    chosen = await emu.select(menu, SELECT_ID, ["shimmer"], user=emu.user)
    await chosen.wait_message(timeout=30)
    assert menu.content == "Saved in this server: your voice is now **shimmer**." and menu.components == []

    spoken = await speak(emu, text="Hello world.")
    assert (await spoken.wait_message(timeout=30)).attachments
    assert [(r.json["input"], r.json["voice"]) for r in speech_endpoint.requests] == [("Hello world.", "shimmer")]
