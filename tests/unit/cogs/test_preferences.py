"""``/voice`` in-process: a member's own choices, and the speech service honouring them."""

from __future__ import annotations

from pathlib import Path

from tests.loopback.discord import DiscordEmulator
from tests.unit.cogs.in_process import InProcessBot, running_in_process


async def test_a_members_voice_choice_is_what_their_speak_uses(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    saved = await emu.invoke("voice set", {"voice": "shimmer", "speed": 0.75})
    assert (await saved.wait_message()).ephemeral

    mine = await emu.invoke("speak", {"text": "in my voice"})
    await mine.wait_message()
    theirs = await emu.invoke("speak", {"text": "in the default voice"}, user=emu.other_user)
    await theirs.wait_message()

    assert [(r.text, r.voice, r.speed) for r in speech.requests] == [
        ("in my voice", "shimmer", 0.75),
        ("in the default voice", "alloy", 1.0),
    ]


async def test_a_long_voice_list_fits_in_one_message(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    """A server may list hundreds of voices (loudness-tts lists its catalogue): /voices shows what fits, the
    defaults first, and says how many more there are."""
    emu = discord_emulator
    many = [f"en_US-speaker-number-{n:03d}-medium" for n in range(150)]
    async with running_in_process(emu, tmp_path, SPEECH_VOICES=",".join(many),
                                  SPEECH_DEFAULT_VOICE=many[-1]):
        reply = await (await emu.invoke("voices", {}, user=emu.user, guild=emu.guild,
                                        channel=emu.text_channel)).wait_message()
    assert reply.ephemeral and len(reply.content) <= 2000
    assert reply.content.startswith(f"**Voices:**\n• {many[-1]} (bot default, yours here)\n• {many[0]}\n")
    assert "more: type in /voice set's voice option to search them." in reply.content
