"""A voice player whose loop fails (a bug, not a failed item) ends its session cleanly: the bot leaves, says so
in the channel, gives back what the queued items reserved, and the next ``/join`` starts a working session."""

from __future__ import annotations

import asyncio

import pytest

from bot.readaloud.guild_reader import GuildReader
from bot.voice import player as player_module
from bot.voice.player import GuildPlayer
from bot.voice.sessions import CRASH_NOTICE
from tests.unit.cogs.in_process import InProcessBot


async def test_a_crashed_player_ends_its_session_says_so_and_join_works_again(
    in_process_bot: InProcessBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, voice = in_process_bot.emu, in_process_bot.services.voice
    joined = await emu.invoke("join", {})
    await joined.wait_message(timeout=20)
    assert emu.voice_connected()

    real_prepare = GuildPlayer._prepare
    calls = []

    def broken_prepare(self: GuildPlayer, item: object) -> object:
        calls.append(item)
        raise RuntimeError("a bug in the player")

    monkeypatch.setattr(GuildPlayer, "_prepare", broken_prepare)
    spoken = await emu.invoke("speak", {"text": "this will not play", "output": "voice"})
    await spoken.wait_message(timeout=10)
    await emu.wait_for(lambda: any(m.content == CRASH_NOTICE for m in emu.channel_messages), timeout=10,
                       what="the crash notice in the channel")
    await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="the bot out of voice")
    assert voice.get(emu.guild.id) is None
    [notice] = [m for m in emu.channel_messages if m.content == CRASH_NOTICE]
    assert notice.channel_id == emu.voice_channel.id and notice.allowed_mentions == {"parse": []}
    # the failure was logged once, with its traceback, for the operator
    [record] = [r for r in in_process_bot.errors.records if "voice player failed" in r.getMessage()]
    assert record.exc_info is not None
    in_process_bot.errors.records.remove(record)

    monkeypatch.setattr(GuildPlayer, "_prepare", real_prepare)
    again = await emu.invoke("join", {})
    await again.wait_message(timeout=20)
    await emu.wait_for(emu.voice_connected, timeout=10, what="the bot back in voice")
    spoken = await emu.invoke("speak", {"text": "and now it plays", "output": "voice"})
    await spoken.wait_message(timeout=10)
    session = emu.voice_session()
    await emu.wait_for(lambda: len(session.audio_packets()) > 10, timeout=20, what="audio heard")
    assert len(calls) == 1


async def test_a_crashed_reader_ends_the_session_says_so_and_reading_works_after_a_new_join(
    in_process_bot: InProcessBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, read_aloud = in_process_bot.emu, in_process_bot.services.read_aloud
    joined = await emu.invoke("join", {})
    await joined.wait_message(timeout=20)

    real_wait = GuildReader._wait_ready

    async def broken_wait(self: GuildReader) -> object:
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(GuildReader, "_wait_ready", broken_wait)
    await emu.chat.send(emu.user, emu.voice_channel, "Hello world.")
    await emu.wait_for(lambda: any(m.content == CRASH_NOTICE for m in emu.channel_messages), timeout=10,
                       what="the crash notice in the channel")
    await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="the bot out of voice")
    assert read_aloud.reader(emu.guild.id) is None and in_process_bot.speech.requests == []
    [record] = [r for r in in_process_bot.errors.records if "read-aloud-" in r.getMessage()]
    in_process_bot.errors.records.remove(record)

    monkeypatch.setattr(GuildReader, "_wait_ready", real_wait)
    again = await emu.invoke("join", {})
    await again.wait_message(timeout=20)
    await emu.wait_for(emu.voice_connected, timeout=10, what="the bot back in voice")
    await emu.chat.send(emu.user, emu.voice_channel, "Good morning everyone.")
    await emu.wait_for(lambda: in_process_bot.speech.requests, timeout=10, what="the message synthesized")
    assert [r.text for r in in_process_bot.speech.requests] == ["Alice said, Good morning everyone."]


async def test_leaving_ends_the_player_even_when_a_library_loses_its_cancellation(
    in_process_bot: InProcessBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's ``asyncio.wait_for`` returns normally when the call it waits for finishes as the task is
    cancelled: the cancellation is lost. A player whose loop missed it must still end when its session does
    (shutdown once hung here for good)."""
    emu, voice = in_process_bot.emu, in_process_bot.services.voice
    joined = await emu.invoke("join", {})
    await joined.wait_message(timeout=20)
    announced = asyncio.Event()

    async def losing_the_cancellation(item: object) -> None:
        announced.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # what 3.11's wait_for does in that race

    monkeypatch.setattr(player_module, "_started", losing_the_cancellation)
    spoken = await emu.invoke("speak", {"text": "One two three four five six seven eight.", "output": "voice"})
    await spoken.wait_message(timeout=10)
    await asyncio.wait_for(announced.wait(), 10)
    session = voice.get(emu.guild.id)
    assert session is not None
    leaving = asyncio.ensure_future(voice.leave(emu.guild.id))
    done, _ = await asyncio.wait([leaving], timeout=10)  # a timeout that cancels the leave would unblock it
    assert leaving in done and leaving.result() is True
    assert not emu.voice_connected()
