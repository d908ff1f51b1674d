"""``/settings`` in-process: moderators change what the speech service uses; nobody else changes anything."""

from __future__ import annotations

from bot.audio.formats import AudioFormat
from bot.speech.catalog import SpeedRange
from tests.unit.cogs.in_process import InProcessBot


async def test_server_defaults_set_by_a_moderator_are_what_speak_uses(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    changed = await emu.invoke("settings defaults", {"voice": "nova", "speed": 1.25, "format": "flac"},
                               user=emu.owner)
    reply = await changed.wait_message()
    assert reply.ephemeral and "nova" in reply.content

    spoken = await emu.invoke("speak", {"text": "with the server's defaults"})
    message = await spoken.wait_message()

    [request] = speech.requests
    assert (request.voice, request.speed, request.format) == ("nova", 1.25, AudioFormat.FLAC)
    assert message.attachments[0].filename == "speech.flac"


async def test_a_voice_the_engine_does_not_offer_is_refused_and_nothing_changes(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    changed = await emu.invoke("settings defaults", {"voice": "no-such-voice"}, user=emu.owner)
    reply = await changed.wait_message()
    assert reply.ephemeral and "Unknown voice" in reply.content
    assert (await in_process_bot.store.get_guild_settings(emu.guild.id)).default_voice is None


async def test_a_member_who_is_not_a_moderator_changes_nothing(in_process_bot: InProcessBot) -> None:
    """Discord hides the command from them by default; a server can show it to anyone, and the bot checks."""
    emu = in_process_bot.emu
    attempt = await emu.invoke("settings budget", {"daily": 1}, user=emu.user)
    reply = await attempt.wait_message()
    assert reply.ephemeral
    assert (await in_process_bot.store.get_guild_settings(emu.guild.id)).daily_char_budget is None


async def test_show_tells_moderators_what_the_speech_server_does(in_process_bot: InProcessBot) -> None:
    """Issue 13 item 1: the capabilities found since start (formats, instructions, voices, speeds, voice honoured)."""
    emu, capabilities = in_process_bot.emu, in_process_bot.services.capabilities
    capabilities.speeds, capabilities.voice_honoured, capabilities.instructions = SpeedRange(0.5, 2.0), False, False
    shown = await (await emu.invoke("settings show", {}, user=emu.owner)).wait_response()
    field = next(f for f in shown.data["embeds"][0]["fields"] if f["name"].startswith("Speech server"))
    assert "voices: 6 from the model's default list" in field["value"]
    assert "speed range: 0.5 to 2 (measured)" in field["value"]
    assert "voice honoured: no: every voice sounds the same" in field["value"]
    assert "instructions: not accepted" in field["value"]
