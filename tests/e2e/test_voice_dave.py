"""End to end under DAVE: the real bot in calls that are end-to-end encrypted, as every non-stage call on
Discord has been since 2026-03.

The loopback voice gateway is the MLS external sender; the humans in the channel are simulated clients running
Discord's own libdave (``tests.loopback.dave_listener``), so what counts as heard is what a human's client could
decrypt. The bot runs davey, an independent implementation: every check here crosses the two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.loopback.dave_call import DaveCall
from tests.loopback.dave_listener import Listener, stranger_key_package
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_voice_session import VoiceSession
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.bot_process import BotProcess
from tests.support.voice_helpers import (
    current_session,
    heard_words,
    join,
    segments,
    served_audio_packets,
    speak_in_voice,
    voice_bot,
)

#: The closed grammar includes what is left when the first word is lost, so losing it shows.
HELLO = ["hello world", "world"]
MORNING = ["good morning everyone", "morning everyone", "everyone"]
COUNT = "One two three four five six seven eight nine ten. " * 2


@pytest.fixture
async def bot(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> AsyncIterator[BotProcess]:
    async with voice_bot(discord_emulator, speech_endpoint, tmp_path) as process:
        yield process


def call_of(emu: DiscordEmulator) -> DaveCall:
    return emu.voice.server.calls[emu.voice_channel.id]


def listener(emu: DiscordEmulator, user_id: int) -> Listener:
    return next(li for li in emu.voice.server.listeners(emu.voice_channel.id) if li.user_id == user_id)


def lost_in_group(emu: DiscordEmulator) -> dict[int, int]:
    """Frames of the bot that each listener could not decrypt while it was in the group."""
    return {li.user_id: sum(h.undecryptable for h in li.heard.values())
            for li in emu.voice.server.listeners(emu.voice_channel.id)}


async def played(session: VoiceSession, items: int = 1) -> list[list[bytes]]:
    await session.changes.wait_for(lambda: len(segments(session)) >= items, 30, f"{items} items heard")
    await session.wait_idle(quiet=0.6, timeout=30)
    return segments(session)


async def test_an_item_right_after_join_is_heard_from_its_first_word(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)  # the audio is now in the cache
    await played(await current_session(emu))
    await (await emu.invoke("leave", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)).wait_message()
    await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="the bot leaving")

    assert "Joined" in await join(emu)
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)  # audio at once, from the cache
    session = await current_session(emu)
    (item,) = await played(session)

    assert len(speech_endpoint.served) == 1
    assert session.dave_protocol_version == 1 and session.plaintext_frames() == []
    assert item == served_audio_packets(speech_endpoint.served[-1])  # every packet, the first ones included
    assert heard_words(item, HELLO) == "hello world"
    assert session.check_stream() == []
    alice = listener(emu, emu.user.id)
    assert alice.mls_failures == [] and sum(h.plaintext for h in alice.heard.values()) == 0


async def test_the_first_speak_joins_and_is_heard_whole_whoever_wins_the_first_commit(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    for winner in (emu.user.id, emu.bot_user.id):
        emu.voice.server.calls.clear()
        async with voice_bot(emu, speech_endpoint, tmp_path):
            await emu.voice.server.call(emu.guild.id, emu.voice_channel.id)
            call_of(emu).prefer_commits_from = winner
            await (await speak_in_voice(emu, "Good morning everyone.")).wait_message(timeout=30)
            session = await current_session(emu)
            (item,) = await played(session)
            assert call_of(emu).commits_won == {winner: 1}
            assert heard_words(item, MORNING) == "good morning everyone"
            assert item == served_audio_packets(speech_endpoint.served[-1])
            assert session.check_stream() == []


async def test_listeners_joining_and_leaving_mid_item_lose_nothing_once_in_the_group(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    await emu.voice.move_member(emu.owner, emu.voice_channel)
    await (await speak_in_voice(emu, COUNT)).wait_message(timeout=30)
    session = await current_session(emu)
    await session.wait_packets(40, timeout=20)
    await emu.voice.move_member(emu.other_user, emu.voice_channel)  # bob joins mid-item
    await session.wait_packets(len(session.packets) + 40, timeout=20)
    await emu.voice.move_member(emu.owner, None)  # the owner leaves mid-item
    await session.wait_packets(len(session.packets) + 40, timeout=20)
    # one item; a machine too busy to keep the stream fed splits it with silence frames, which loses nothing
    item = [packet for segment in await played(session) for packet in segment]

    call = call_of(emu)
    assert [event for event, *_ in call.history].count("execute") >= 3  # bot + alice, bob in, owner out
    assert session.check_stream() == [] and session.plaintext_frames() == []
    assert lost_in_group(emu) == {emu.user.id: 0, emu.other_user.id: 0}
    bob = listener(emu, emu.other_user.id)
    assert bob.heard[emu.bot_user.id].decrypted  # bob hears the rest of the item once welcomed
    assert len(item) == len(session.audio_packets())


async def test_the_sole_member_reset_and_someone_coming_back(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_ALONE_TIMEOUT="60"):
        await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
        session = await current_session(emu)
        await played(session)
        await emu.voice.move_member(emu.user, None)  # the bot is alone: op 24 epoch 1, op 21 transition 0
        call = call_of(emu)
        await emu.wait_for(lambda: ("reset", 0, 1) in call.history, timeout=10, what="the sole-member reset")
        await emu.voice.move_member(emu.user, emu.voice_channel)  # alice is back: a new group
        await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)  # from the cache: at once
        items = await played(session, 2)
        assert len(speech_endpoint.served) == 1
        assert heard_words(items[-1], HELLO) == "hello world"
        assert items[-1] == served_audio_packets(speech_endpoint.served[-1])
        assert session.plaintext_frames() == [] and session.check_stream() == []


@pytest.mark.parametrize("fault", ["foreign signature", "stale epoch"])
async def test_a_refused_proposal_does_not_stop_the_bot_from_reading_the_voice_gateway(
    bot: BotProcess, discord_emulator: DiscordEmulator, fault: str
) -> None:
    emu = discord_emulator
    assert "Joined" in await join(emu)
    session = await current_session(emu)
    call = call_of(emu)
    await emu.wait_for(lambda: emu.bot_user.id in call.group_user_ids(), timeout=10, what="the bot in the group")
    package = stranger_key_package(emu.voice_channel.id, emu.other_user.id)
    if fault == "foreign signature":
        await call.foreign_proposal(session.dave_member, package)
    else:
        await call.stale_proposal(session.dave_member, package)
    await emu.wait_for(lambda: "ignored DAVE proposals" in bot.log, timeout=10, what="the refusal logged")

    await emu.voice.move_member(emu.other_user, emu.voice_channel)  # bob joins afterwards: needs a new commit
    await emu.wait_for(lambda: emu.other_user.id in call.group_user_ids() and call.transition is None,
                       timeout=10, what="bob in the group")
    await (await speak_in_voice(emu, "Good morning everyone.")).wait_message(timeout=30)
    await played(session)
    bob = listener(emu, emu.other_user.id)
    assert heard_words([opus for _, opus in bob.heard[emu.bot_user.id].decrypted], MORNING) == "good morning everyone"
    assert bot.log.count("ignored DAVE proposals") == 1 and "could not handle" not in bot.log


async def test_an_invalid_commit_is_reported_and_the_bot_is_added_again(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    assert "Joined" in await join(emu)
    session = await current_session(emu)
    call = call_of(emu)
    await emu.wait_for(lambda: emu.bot_user.id in call.group_user_ids() and call.transition is None, timeout=10,
                       what="the bot in the group")
    call.corrupt_commit_for(emu.bot_user.id)
    call.prefer_commits_from = emu.user.id  # alice commits bob in; the bot gets a damaged copy
    await emu.voice.move_member(emu.other_user, emu.voice_channel)
    await emu.wait_for(lambda: call.invalid_reports, timeout=10, what="op 31 from the bot")
    assert call.invalid_reports[0][0] == emu.bot_user.id
    await emu.wait_for(lambda: set(call.group_user_ids()) == {emu.bot_user.id, emu.user.id, emu.other_user.id}
                       and call.transition is None, timeout=15, what="the bot added again")
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
    items = await played(session)
    assert heard_words(items[-1], HELLO) == "hello world"
    assert session.plaintext_frames() == [] and session.check_stream() == []


async def test_a_slow_welcome_delays_the_first_words_instead_of_losing_them(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    await emu.voice.move_member(emu.owner, emu.voice_channel)
    call = await emu.voice.server.call(emu.guild.id, emu.voice_channel.id)
    await emu.wait_for(lambda: call.established and call.transition is None, timeout=10, what="alice and owner")
    call.welcome_delay = 1.5
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
    session = await current_session(emu)
    (item,) = await played(session)
    assert item == served_audio_packets(speech_endpoint.served[-1])
    assert heard_words(item, HELLO) == "hello world"
    assert session.plaintext_frames() == [] and session.check_stream() == []


async def test_an_add_for_someone_not_in_the_call_is_refused(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    assert "Joined" in await join(emu)
    call = call_of(emu)
    await emu.wait_for(lambda: emu.bot_user.id in call.group_user_ids() and call.transition is None, timeout=10,
                       what="the bot in the group")
    await call.unexpected_add(stranger_key_package(emu.voice_channel.id, 4242))
    await emu.wait_for(lambda: "ignored DAVE proposals" in bot.log, timeout=10, what="the bot refusing the Add")
    assert call.accepted_unexpected == []  # neither the bot (davey) nor alice (libdave) committed it


async def test_without_encryption_an_item_ends_with_a_clear_message(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    call = await emu.voice.server.call(emu.guild.id, emu.voice_channel.id)
    call.hold_commits = True  # the voice server never completes the group
    interaction = await speak_in_voice(emu, "Hello world.")
    await interaction.wait_message(timeout=30)
    error = await interaction.wait_message(timeout=30, index=1)
    assert error.ephemeral and "end-to-end encryption" in error.content
    session = await current_session(emu)
    assert session.audio_packets() == [] and session.plaintext_frames() == []
    await emu.wait_for(lambda: "reconnecting voice" in bot.log, timeout=10, what="the bot reconnecting voice")


async def test_a_call_without_dave_plays_in_the_clear(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    emu.voice.server.dave_version = 0  # as in a stage channel
    async with voice_bot(emu, speech_endpoint, tmp_path):
        await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
        session = await current_session(emu)
        (item,) = await played(session)
        assert session.dave_protocol_version == 0
        assert item == served_audio_packets(speech_endpoint.served[-1])
        assert heard_words(item, HELLO) == "hello world"
        assert session.check_stream() == []


async def test_a_refused_external_sender_reconnects_voice_and_the_item_is_heard(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    call = await emu.voice.server.call(emu.guild.id, emu.voice_channel.id)
    call.bad_external_sender_for(emu.bot_user.id)
    interaction = await speak_in_voice(emu, "Hello world.")
    await interaction.wait_message(timeout=30)
    await emu.wait_for(lambda: len(emu.voice.sessions(emu.guild)) == 2, timeout=20, what="a new voice session")
    session = emu.voice_session()
    (item,) = await played(session)
    assert item == served_audio_packets(speech_endpoint.served[-1])
    assert heard_words(item, HELLO) == "hello world"
    assert bot.log.count("reconnecting voice") == 1 and "MLS external sender was refused" in bot.log
    first = emu.voice.sessions(emu.guild)[0]
    assert first.plaintext_frames() == [] and first.audio_packets() == []


async def test_after_a_move_the_bot_is_heard_in_the_new_channel_from_the_first_word(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    elsewhere = emu.build.channel(emu.guild, "Elsewhere", type=2)
    await emu.dispatch("CHANNEL_CREATE", elsewhere.to_payload())
    await emu.voice.move_member(emu.other_user, elsewhere)
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
    await played(await current_session(emu))
    await emu.voice.move_bot(emu.guild, elsewhere)  # a moderator drags the bot to bob
    await emu.wait_for(lambda: emu.voice_session().channel_id == elsewhere.id and emu.voice_connected(),
                       timeout=15, what="the bot in the new channel")
    await emu.voice.move_member(emu.user, elsewhere)  # alice follows, so she may use /speak there
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)  # from the cache: at once
    moved = emu.voice_session()
    (item,) = await played(moved)
    assert item == served_audio_packets(speech_endpoint.served[-1])
    assert moved.plaintext_frames() == [] and moved.check_stream() == []
    bob = next(li for li in emu.voice.server.listeners(elsewhere.id) if li.user_id == emu.other_user.id)
    assert heard_words([opus for _, opus in bob.heard[emu.bot_user.id].decrypted], HELLO) == "hello world"
