"""``/speak output:voice`` in-process: the public reply says only what is true (getting ready or queued, then
playing; not played when the audio fails), and the requester gets a failure's reason privately."""

from __future__ import annotations

from bot.speech.errors import SpeechServiceError
from tests.unit.cogs.in_process import InProcessBot


async def test_the_reply_says_playing_only_once_the_audio_plays(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    await (await emu.invoke("join", {})).wait_message(timeout=20)
    interaction = await emu.invoke("speak", {"text": "hello there", "output": "voice"})
    reply = await interaction.wait_message(timeout=10)
    where = f"<#{emu.voice_channel.id}>"
    assert reply.content.endswith(f"— getting ready in {where}") or reply.content.endswith(f"— playing in {where}")
    await emu.wait_for(lambda: reply.content.endswith(f"— playing in {where}"), timeout=20, what="playing")
    session = emu.voice_session()
    await emu.wait_for(session.audio_packets, timeout=10, what="the audio heard")
    assert reply.allowed_mentions == {"parse": []}


async def test_a_second_item_is_queued_behind_the_first(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    await (await emu.invoke("join", {})).wait_message(timeout=20)
    first = await emu.invoke("speak", {"text": "the first one", "output": "voice"})
    await first.wait_message(timeout=10)
    second = await emu.invoke("speak", {"text": "the second one", "output": "voice"})
    reply = await second.wait_message(timeout=10)
    assert reply.content.endswith(f"— queued in <#{emu.voice_channel.id}> (after 1 other)")


async def test_a_failure_replaces_the_status_and_the_reason_goes_to_the_requester(
    in_process_bot: InProcessBot,
) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    await (await emu.invoke("join", {})).wait_message(timeout=20)
    speech.errors.append(SpeechServiceError("The speech service is having problems. Try again in a minute.",
                                            status=503))
    interaction = await emu.invoke("speak", {"text": "this one fails", "output": "voice"})
    reply = await interaction.wait_message(timeout=10)
    reason = await interaction.wait_message(timeout=20, index=1)
    assert reason.ephemeral and "having problems" in reason.content
    await emu.wait_for(lambda: reply.content.endswith(f"— not played in <#{emu.voice_channel.id}>"), timeout=10,
                       what="the status replaced")
    assert "playing" not in reply.content
