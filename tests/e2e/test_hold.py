"""End to end (issue 18): the real bot process, the loopback Discord and speech endpoint, the moderation hold in
both modes.

Times are on one clock: the emulator's event loop (its voice packets are stamped with the kernel's receive time on
that clock) and the speech endpoint's ``received_at`` (``time.monotonic``, which the loop's clock is).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.test_readaloud import heard, join, sent_texts, wait_items
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.voice_helpers import current_session, segments, voice_bot

HOLD = 2.0  # long enough for the endpoint to synthesize a short text on a busy machine during the hold


def first_packet_after(session, since: float) -> float:  # noqa: ANN001 - the emulator's VoiceSession
    """When the first audible packet sent after ``since`` arrived."""
    return min(p.arrival for p in session.audio_packets() if p.arrival >= since)


async def settings_reading(emu: DiscordEmulator, **options: object) -> str:
    interaction = await emu.invoke("settings reading", options, user=emu.owner, guild=emu.guild,
                                   channel=emu.text_channel)
    response = await interaction.wait_response(timeout=10)
    return response.data.get("content") or ""


async def test_default_mode_asks_during_the_hold_plays_after_it_and_never_plays_a_deleted_message(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, endpoint = discord_emulator, speech_endpoint
    chat, here = emu.chat, emu.voice_channel
    async with voice_bot(emu, endpoint, tmp_path, READ_ALOUD_HOLD=str(HOLD), SPEECH_TIMEOUT="5"):
        await join(emu)
        session = await current_session(emu)
        await chat.send(emu.user, here, "Thank you for listening.")  # the endpoint's offline voice warms up
        await wait_items(emu, session, 1)

        endpoint.inject(Fault(first_byte_delay=0.15))
        sent_at = emu.loop_time()
        await chat.send(emu.user, here, "Hello world.")
        await wait_items(emu, session, 2)
        assert heard(session) == ["alice said thank you for listening", "hello world"]
        request = endpoint.requests[-1]
        assert request.json["input"] == "Hello world."
        assert request.received_at < sent_at + HOLD  # synthesis started during the hold
        first = first_packet_after(session, sent_at)
        assert first >= sent_at + HOLD  # ... and playback did not start before it ended
        assert first < sent_at + HOLD + 1.0  # the audio was ready: no synthesis after the hold

        deleted_at = emu.loop_time()
        deleted = await chat.send(emu.user, here, "Good morning everyone.")
        await emu.wait_for(lambda: len(endpoint.requests) == 3, timeout=HOLD, what="the early request")
        await chat.delete(deleted)
        await session.wait_idle(quiet=HOLD + 1.5, timeout=20)
        # Its text reached the speech service (the default mode's trade-off), but nobody heard it.
        assert sent_texts(endpoint)[2:] == ["Good morning everyone."]
        assert len(segments(session)) == 2
        assert not [p for p in session.audio_packets() if p.arrival >= deleted_at]


async def test_strict_mode_sends_nothing_during_the_hold_and_an_edit_plays_the_new_text(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, endpoint = discord_emulator, speech_endpoint
    chat, here = emu.chat, emu.voice_channel
    async with voice_bot(emu, endpoint, tmp_path, READ_ALOUD_HOLD="0.5", SPEECH_TIMEOUT="5"):
        await join(emu)
        session = await current_session(emu)
        reply = await settings_reading(emu, hold_mode="strict", hold=HOLD)
        assert f"Moderation hold: bot default (0.5 s) → {HOLD:g} s" in reply and "Hold mode:" in reply, reply

        deleted = await chat.send(emu.user, here, "Good morning everyone.")
        await asyncio.sleep(HOLD / 2)
        await chat.delete(deleted)
        sent_at = emu.loop_time()
        edited = await chat.send(emu.user, here, "Open the door.")
        await asyncio.sleep(HOLD / 2)
        assert endpoint.requests == []  # strict: nothing before the hold ends
        edited_at = emu.loop_time()
        await chat.edit(edited, "Hello world.")
        await wait_items(emu, session, 1)
        assert heard(session) == ["alice said hello world"]
        assert sent_texts(endpoint) == ["Alice said, Hello world."]  # the deleted message never left the bot
        (request,) = endpoint.requests
        assert request.received_at >= edited_at + HOLD  # the edit started the hold again
        assert first_packet_after(session, sent_at) >= edited_at + HOLD


async def test_default_mode_an_edit_during_the_hold_plays_the_new_text(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, endpoint = discord_emulator, speech_endpoint
    chat, here = emu.chat, emu.voice_channel
    async with voice_bot(emu, endpoint, tmp_path, READ_ALOUD_HOLD=str(HOLD), SPEECH_TIMEOUT="5"):
        await join(emu)
        session = await current_session(emu)
        sent_at = emu.loop_time()
        edited = await chat.send(emu.user, here, "Open the door.")
        await emu.wait_for(lambda: len(endpoint.requests) == 1, timeout=HOLD, what="the early request")
        edited_at = emu.loop_time()
        await chat.edit(edited, "Thank you for listening.")
        await wait_items(emu, session, 1)
        assert heard(session) == ["alice said thank you for listening"]
        assert sent_texts(endpoint) == ["Alice said, Open the door.", "Alice said, Thank you for listening."]
        assert endpoint.requests[1].received_at < edited_at + HOLD  # synthesized again at once
        assert first_packet_after(session, sent_at) >= edited_at + HOLD  # the hold started again
