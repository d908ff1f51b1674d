"""End to end on a stage: the real bot process joins a stage channel of the loopback Discord, becomes a speaker
(or asks to), and is heard only as a speaker.

The loopback models Discord's stages: everyone joins in the audience, the voice server forwards nothing an
audience member sends (such frames show up in ``check_stream()``), the bot's ``PATCH .../voice-states/@me`` is
validated against the spec and refused 403 without the permission, and the test plays the stage moderator who
invites the bot or sends it back to the audience. Stages run without DAVE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_messages import Message
from tests.loopback.discord_state import MUTE_MEMBERS, REQUEST_TO_SPEAK
from tests.loopback.speech_server import SpeechEndpoint, local_speech
from tests.support.bot_process import BotProcess
from tests.support.voice_helpers import (
    PHRASE,
    current_session,
    heard_words,
    segments,
    served_audio_packets,
    speak_in_voice,
    voice_bot,
)


@pytest.fixture
async def on_stage(discord_emulator: DiscordEmulator) -> DiscordEmulator:
    """alice is on the stage (in its audience, as everyone who joins one)."""
    emu = discord_emulator
    await emu.move_member(emu.user, emu.stage_channel)
    return emu


@pytest.fixture
async def moderator_bot(
    on_stage: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> AsyncIterator[BotProcess]:
    """The bot with Mute Members: a stage moderator, who may make itself a speaker."""
    on_stage.bot_role.permissions = MUTE_MEMBERS
    async with voice_bot(on_stage, speech_endpoint, tmp_path) as process:
        yield process


async def join_stage(emu: DiscordEmulator) -> Message:
    interaction = await emu.invoke("join", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    return await interaction.wait_message(timeout=30)


async def test_a_stage_moderator_bot_makes_itself_a_speaker_and_is_heard_without_dave(
    moderator_bot: BotProcess, on_stage: DiscordEmulator
) -> None:
    emu, stage = on_stage, on_stage.stage_channel
    reply = await join_stage(emu)
    assert not reply.ephemeral and reply.content == f"🔊 Joined <#{stage.id}>."
    await emu.wait_for(lambda: not emu.voice.bot_state().suppress, timeout=10, what="the bot a speaker")
    assert emu.voice.stage_requests == [
        (emu.guild.id, {"suppress": False, "channel_id": stage.id, "request_to_speak_timestamp": None})]

    interaction = await speak_in_voice(emu, PHRASE)
    assert "getting ready in" in (await interaction.wait_message(timeout=30)).content
    session = await current_session(emu)
    await session.wait_packets(10, timeout=20)
    await session.wait_idle(quiet=0.5, timeout=30)
    assert session.channel_id == stage.id and session.dave_protocol_version == 0  # a stage runs without DAVE
    assert session.check_stream() == []  # nothing sent while suppressed, nothing in the clear
    assert heard_words([p.opus for p in session.audio_packets()]) == PHRASE


async def test_without_mute_members_the_bot_asks_to_speak_and_is_heard_once_invited(
    on_stage: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, stage = on_stage, on_stage.stage_channel
    emu.bot_role.permissions = REQUEST_TO_SPEAK
    async with voice_bot(emu, speech_endpoint, tmp_path):
        reply = await join_stage(emu)
        assert reply.ephemeral and "asked to speak; a stage moderator must invite me" in reply.content
        state = emu.voice.bot_state()
        assert state is not None and state.suppress and state.request_to_speak_timestamp is not None
        [(guild_id, body)] = emu.voice.stage_requests
        assert guild_id == emu.guild.id and set(body) == {"channel_id", "request_to_speak_timestamp"}
        assert body["channel_id"] == stage.id

        interaction = await speak_in_voice(emu, PHRASE)
        waiting = await interaction.wait_message(timeout=30)
        assert "waiting in" in waiting.content and "until a stage moderator invites me to speak" in waiting.content
        session = await current_session(emu)
        await session.wait_idle(quiet=1.0, timeout=10)
        assert session.audio_packets() == [] and session.suppressed_frames() == []  # held, not sent to nobody
        assert speech_endpoint.requests == []  # and not even synthesized yet

        await emu.voice.invite_bot_to_speak()  # the moderator accepts the request
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=0.5, timeout=30)
        assert session.check_stream() == []
        assert heard_words([p.opus for p in session.audio_packets()]) == PHRASE
        await emu.wait_for(lambda: "playing in" in waiting.content, timeout=10, what="the reply saying it plays")


async def test_without_any_stage_permission_the_bot_says_a_moderator_must_invite_it(
    on_stage: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = on_stage
    async with voice_bot(emu, speech_endpoint, tmp_path):
        reply = await join_stage(emu)
        assert reply.ephemeral and "may not ask to speak" in reply.content
        assert emu.voice.stage_requests == [] and emu.voice.bot_state().suppress  # nothing Discord would refuse


async def test_moved_to_the_audience_the_bot_stops_and_says_so_then_goes_on_when_invited_again(
    moderator_bot: BotProcess, on_stage: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = on_stage
    await join_stage(emu)
    await emu.wait_for(lambda: not emu.voice.bot_state().suppress, timeout=10, what="the bot a speaker")
    await (await speak_in_voice(emu, "One two three four five six seven eight nine ten.")).wait_message(timeout=30)
    session = await current_session(emu)
    await emu.wait_for(lambda: len(session.audio_packets()) >= 10, timeout=30, what="the bot heard")

    await emu.voice.move_bot_to_audience()
    notice = await emu.wait_for(
        lambda: next((m for m in emu.channel_messages if "moved me to the audience" in m.content), None),
        timeout=10, what="the bot saying it was moved to the audience")
    assert notice.channel_id == emu.text_channel.id  # where /join was used
    assert notice.allowed_mentions == {"parse": []}
    await session.wait_idle(quiet=1.0, timeout=20)
    whole = len(served_audio_packets((await local_speech(speech_endpoint.requests[-1].json))[0]))
    assert len([p for p in session.packets if not p.is_silence]) < whole / 2  # it stopped: the rest never went out

    before = len(segments(session))
    waiting = await (await speak_in_voice(emu, "hello world")).wait_message(timeout=30)
    assert "until a stage moderator invites me to speak" in waiting.content
    await emu.voice.invite_bot_to_speak()
    await emu.wait_for(lambda: len(segments(session)) > before, timeout=20, what="the held item played")
    await session.wait_idle(quiet=0.5, timeout=30)
    assert heard_words(segments(session)[-1]) == "hello world"


async def test_autojoin_follows_a_member_onto_a_stage_and_asks_to_speak_in_its_chat(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, stage = discord_emulator, discord_emulator.stage_channel
    emu.bot_role.permissions = REQUEST_TO_SPEAK
    store = await Store.open(f"sqlite:///{tmp_path / 'speechbot.db'}")
    await store.update_guild_settings(emu.guild.id, autojoin=True, read_channel_ids=[emu.text_channel.id],
                                      name_mode="username")
    await store.close()
    await emu.move_member(emu.user, None)
    async with voice_bot(emu, speech_endpoint, tmp_path):
        await emu.move_member(emu.other_user, stage)  # bob goes on stage: the bot follows
        notice = await emu.wait_for(
            lambda: next((m for m in emu.channel_messages if "asked to speak" in m.content), None),
            timeout=20, what="the bot saying it asked to speak")
        assert notice.channel_id == stage.id and notice.allowed_mentions == {"parse": []}
        assert emu.voice.bot_state().request_to_speak_timestamp is not None

        await emu.chat.send(emu.other_user, emu.text_channel, "Good morning everyone.")
        await emu.voice.invite_bot_to_speak()
        session = await current_session(emu)
        await emu.wait_for(lambda: segments(session), timeout=30, what="the message read")
        await session.wait_idle(quiet=1.0, timeout=30)
        assert session.check_stream() == []
        phrases = ["bob said good morning everyone", "good morning everyone", "hello world"]
        assert [heard_words(s, phrases) for s in segments(session)] == ["bob said good morning everyone"]


async def test_after_a_restart_the_bot_comes_back_to_the_stage_and_asks_to_speak_again(
    on_stage: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, stage = on_stage, on_stage.stage_channel
    emu.bot_role.permissions = REQUEST_TO_SPEAK
    async with voice_bot(emu, speech_endpoint, tmp_path):
        assert "asked to speak" in (await join_stage(emu)).content
        await emu.voice.invite_bot_to_speak()
    assert emu.voice.bot_state() is None  # it left on shutdown, remembering the stage

    async with voice_bot(emu, speech_endpoint, tmp_path):  # back in the audience: it asks again, in the stage's chat
        notice = await emu.wait_for(
            lambda: next((m for m in emu.channel_messages if "asked to speak" in m.content), None),
            timeout=30, what="the bot saying it asked to speak again")
        assert notice.channel_id == stage.id and notice.allowed_mentions == {"parse": []}
        state = emu.voice.bot_state()
        assert state is not None and state.channel_id == stage.id and state.request_to_speak_timestamp is not None

        await emu.voice.invite_bot_to_speak()
        await (await speak_in_voice(emu, PHRASE)).wait_message(timeout=30)
        session = await current_session(emu)
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=0.5, timeout=30)
        assert session.check_stream() == []
        assert heard_words([p.opus for p in session.audio_packets()]) == PHRASE


async def test_speak_onto_a_stage_joins_it_becomes_a_speaker_and_says_only_what_is_true(
    moderator_bot: BotProcess, on_stage: DiscordEmulator
) -> None:
    emu = on_stage
    interaction = await speak_in_voice(emu, PHRASE)  # no /join first: /speak brings the bot onto the stage
    reply = await interaction.wait_message(timeout=30)
    assert "getting ready in" in reply.content  # it made itself a speaker: nothing waits for a moderator
    session = await current_session(emu)
    await session.wait_packets(10, timeout=20)
    await session.wait_idle(quiet=0.5, timeout=30)
    assert session.check_stream() == []
    assert heard_words([p.opus for p in session.audio_packets()]) == PHRASE


async def test_moved_by_a_moderator_from_a_voice_channel_onto_a_stage_the_bot_holds_until_invited(
    moderator_bot: BotProcess, on_stage: DiscordEmulator
) -> None:
    emu = on_stage
    await emu.move_member(emu.user, emu.voice_channel)
    assert (await join_stage(emu)).content == f"🔊 Joined <#{emu.voice_channel.id}>."
    await emu.move_bot(emu.guild, emu.stage_channel)  # dragged onto the stage: in its audience
    await emu.move_member(emu.user, emu.stage_channel)
    await emu.wait_for(
        lambda: next((m for m in emu.channel_messages if "moved me to the audience" in m.content), None),
        timeout=20, what="the bot saying it is in the audience")
    # discord.py follows the move by reconnecting; a /speak before that asks the bot into the member's channel
    # (a /join, which tries the stage again), which is not what this test is about
    await emu.wait_for(lambda: emu.voice_connected() and emu.voice_session().channel_id == emu.stage_channel.id,
                       timeout=20, what="the bot's voice connection on the stage")

    waiting = await (await speak_in_voice(emu, PHRASE)).wait_message(timeout=30)
    assert "until a stage moderator invites me to speak" in waiting.content
    await emu.voice.invite_bot_to_speak()
    session = await current_session(emu)
    assert session.channel_id == emu.stage_channel.id
    await session.wait_packets(10, timeout=20)
    await session.wait_idle(quiet=0.5, timeout=30)
    assert session.check_stream() == []
    assert heard_words([p.opus for p in session.audio_packets()]) == PHRASE
