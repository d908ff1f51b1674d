"""``/speak output:voice_message`` in-process: Discord's native voice message, in the shape Discord requires."""

from __future__ import annotations

import base64

from bot.audio.formats import AudioFormat, sniff
from tests.loopback.discord_state import SEND_VOICE_MESSAGES
from tests.unit.cogs.in_process import InProcessBot

VOICE_MESSAGE = 1 << 13


async def test_a_voice_message_is_one_ogg_opus_attachment_with_duration_and_waveform(
    in_process_bot: InProcessBot,
) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    interaction = await emu.invoke("speak", {"text": "a voice message", "output": "voice_message", "format": "wav"})
    caption = await interaction.wait_message(timeout=10)

    [posted] = [m for m in emu.channel_messages if m.flags & VOICE_MESSAGE]
    assert posted.content == "" and posted.channel_id == emu.text_channel.id
    [attachment] = posted.attachments
    assert attachment.filename.endswith(".ogg") and sniff(attachment.data[:12]) is AudioFormat.OPUS
    assert 0.3 < attachment.duration_secs < 0.8  # the engine's 0.5 s tone
    assert attachment.waveform is not None and 1 <= len(base64.b64decode(attachment.waveform)) <= 256
    assert speech.requests[0].format is AudioFormat.OPUS  # asked as Ogg Opus whatever file format was chosen
    assert attachment.data == speech.served[0]
    assert "a voice message" in caption.content and caption.allowed_mentions == {"parse": []}


async def test_without_send_voice_messages_the_member_is_told_and_nothing_is_synthesized(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    emu.guild.everyone.permissions &= ~SEND_VOICE_MESSAGES
    interaction = await emu.invoke("speak", {"text": "a voice message", "output": "voice_message"})
    reply = await interaction.wait_message(timeout=10)
    assert reply.ephemeral and "Send Voice Messages" in reply.content
    assert in_process_bot.speech.requests == [] and not emu.channel_messages


async def test_a_server_can_make_voice_messages_its_default_output(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    changed = await emu.invoke("settings defaults", {"output": "voice_message"}, user=emu.owner)
    await changed.wait_message()
    spoken = await emu.invoke("speak", {"text": "by default"})
    await spoken.wait_message(timeout=10)
    assert [m for m in emu.channel_messages if m.flags & VOICE_MESSAGE]
