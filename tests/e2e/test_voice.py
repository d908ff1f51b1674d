"""End to end in voice: the real bot process joins the loopback voice server and plays real speech.

What reached the channel is checked packet by packet: RTP continuity, SPEAKING, byte identity with the
served Ogg Opus (passthrough), 20 ms frames that decode, durations, and the words themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.audio.decode import duration_seconds
from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_voice_session import SAMPLE_RATE, decode_pcm
from tests.loopback.speech_server import Fault, ServerQuirks, SpeechEndpoint, local_speech
from tests.support.bot_process import BotProcess
from tests.support.voice_helpers import (
    API_KEY,
    PHRASE,
    current_session,
    heard_words,
    join,
    segments,
    served_audio_packets,
    settled,
    speak_in_voice,
    voice_bot,
)
from tests.unit.audio.test_packetizer import body


@pytest.fixture
async def bot(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> AsyncIterator[BotProcess]:
    async with voice_bot(discord_emulator, speech_endpoint, tmp_path) as process:
        yield process


async def test_ogg_opus_20ms_is_passed_through_byte_for_byte(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    interaction = await speak_in_voice(discord_emulator, PHRASE)
    assert (await interaction.wait_response(timeout=5)).type == 5
    message = await interaction.wait_message(timeout=30)
    assert not message.ephemeral and f"<#{discord_emulator.voice_channel.id}>" in message.content

    voice = await discord_emulator.wait_for(lambda: discord_emulator.voice.sessions(discord_emulator.guild),
                                            timeout=20, what="a voice session")
    session = voice[-1]
    await session.wait_packets(10, timeout=20)
    await session.wait_idle(quiet=0.5, timeout=30)

    assert session.check_stream() == []
    served = served_audio_packets(speech_endpoint.served[-1])
    assert [p.opus for p in session.audio_packets()] == served
    assert session.trailing_silence() == 5
    assert heard_words([p.opus for p in session.audio_packets()]) == PHRASE


def fixed_audio(name: str) -> Callable[[dict[str, Any]], Awaitable[tuple[bytes, str]]]:
    """An endpoint that answers with the phrase in one flavour whatever was asked (like Orpheus-FastAPI)."""

    async def audio(_: dict[str, Any]) -> tuple[bytes, str]:
        data, _fmt = body(name)
        return data, "application/octet-stream"

    return audio


@pytest.mark.parametrize("flavour", ["wav", "pcm", "mp3", "opus-60"])
async def test_other_formats_are_transcoded_to_20ms_frames_that_say_the_words(
    discord_emulator: DiscordEmulator, tmp_path: Path, flavour: str
) -> None:
    # Voice asks for opus; the server sends what it likes. Raw pcm cannot be told from its bytes, so that server
    # makes nothing else: the bot gets to pcm by negotiation (opus and wav refused).
    quirks = ServerQuirks(formats=frozenset({"pcm"})) if flavour == "pcm" else None
    async with SpeechEndpoint(api_key=API_KEY, audio=fixed_audio(flavour), quirks=quirks) as endpoint:
        fmt = "pcm" if flavour == "pcm" else "wav"  # the file format setting, which voice ignores
        async with voice_bot(discord_emulator, endpoint, tmp_path):
            interaction = await speak_in_voice(discord_emulator, PHRASE, format=fmt)
            await interaction.wait_message(timeout=30)
            session = (await discord_emulator.wait_for(
                lambda: discord_emulator.voice.sessions(discord_emulator.guild), timeout=20, what="voice"))[-1]
            await session.wait_packets(10, timeout=20)
            await session.wait_idle(quiet=0.5, timeout=30)

            assert session.check_stream() == []
            payloads = [p.opus for p in session.audio_packets()]
            pcm = decode_pcm(payloads)  # each packet decodes to 960 samples (checked inside)
            source_seconds = duration_seconds(*body(flavour))
            assert abs(len(pcm) / SAMPLE_RATE - source_seconds) <= 0.060
            assert heard_words(payloads) == PHRASE
        assert endpoint.failures == []


async def test_queued_items_play_in_order(bot: BotProcess, discord_emulator: DiscordEmulator) -> None:
    texts = ["Hello world.", "Good morning everyone.", "Thank you for listening."]
    for text in texts:
        interaction = await speak_in_voice(discord_emulator, text)
        await interaction.wait_message(timeout=30)
    session = await current_session(discord_emulator)
    await session.wait_packets(50, timeout=20)
    await session.wait_idle(quiet=0.8, timeout=30)
    assert session.check_stream() == []
    heard = [heard_words(segment) for segment in segments(session)]
    assert heard == ["hello world", "good morning everyone", "thank you for listening"]


async def test_skip_stops_the_current_item_and_clear_drops_the_queue(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    long_text = "One two three four five six seven eight nine ten. " * 3
    for text in (long_text, "Good morning everyone.", "Thank you for listening."):
        await (await speak_in_voice(emu, text)).wait_message(timeout=30)
    session = await current_session(emu)
    await session.wait_packets(25, timeout=20)

    cleared = await emu.invoke("clear", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    assert "Cleared 2 waiting items" in (await cleared.wait_response(timeout=5)).data["content"]
    skipped = await emu.invoke("skip", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    assert "Skipped" in (await skipped.wait_response(timeout=5)).data["content"]
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
    await emu.wait_for(lambda: len(segments(session)) >= 2, timeout=20, what="the item after the skip")
    await session.wait_idle(quiet=0.8, timeout=30)

    items = segments(session)
    full_length = len(served_audio_packets(speech_endpoint.served[0]))
    assert len(items[0]) < full_length / 2  # cut short by /skip
    assert [heard_words(s) for s in items[1:]] == ["hello world"]
    assert session.check_stream() == []


async def test_voice_refusals_are_clear_and_ephemeral(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    other_voice = emu.build.channel(emu.guild, "Locked", type=2)
    other_voice.permission_overwrites = [{"id": str(emu.guild.id), "type": 0, "allow": "0", "deny": str(1 << 20)}]
    full = emu.build.channel(emu.guild, "Full", type=2, user_limit=1)
    emu.build.join_voice(emu.guild, emu.owner, full)
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_QUEUE_SIZE="1"):
        async def refusal(user, text: str = "hello world") -> str:  # noqa: ANN001
            interaction = await emu.invoke("speak", {"text": text, "output": "voice"}, user=user, guild=emu.guild,
                                           channel=emu.text_channel)
            message = await interaction.wait_message(timeout=30)
            assert message.ephemeral
            return message.content

        assert "Join a voice channel first" in await refusal(emu.other_user)
        await emu.voice.move_member(emu.other_user, other_voice)
        assert "permission to connect" in await refusal(emu.other_user)
        await emu.voice.move_member(emu.other_user, full)
        assert "is full" in await refusal(emu.other_user)

        # one playing, one waiting, the third is refused
        for text in ("One two three four five six seven eight nine ten.", "Hello world."):
            assert not (await (await speak_in_voice(emu, text)).wait_message(timeout=30)).ephemeral
        assert "queue is full" in await refusal(emu.user)
        # someone in another channel cannot pull the bot away
        await emu.voice.move_member(emu.other_user, None)
        await emu.voice.move_member(emu.owner, None)
        await emu.voice.move_member(emu.other_user, full)
        assert f"already in <#{emu.voice_channel.id}>" in await refusal(emu.other_user)
        assert emu.voice.sessions(emu.guild)[-1].channel_id == emu.voice_channel.id
    assert speech_endpoint.failures == []


async def test_leaves_when_alone_and_when_idle_and_join_works_again(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_ALONE_TIMEOUT="0.5", VOICE_IDLE_TIMEOUT="1.5"):
        assert "Joined" in await join(emu)
        assert emu.voice_connected()
        await emu.voice.move_member(emu.user, None)  # everyone left
        await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="the bot leaving when alone")

        await emu.voice.move_member(emu.user, emu.voice_channel)
        assert "Joined" in await join(emu)
        await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
        session = await current_session(emu)
        await session.wait_packets(10, timeout=20)
        await emu.wait_for(lambda: not emu.voice_connected(), timeout=15, what="the bot leaving when idle")
        assert session.check_stream() == []





async def test_kicked_moved_or_deleted_channel_never_leave_a_stuck_session(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    elsewhere = emu.build.channel(emu.guild, "Elsewhere", type=2)
    async with voice_bot(emu, speech_endpoint, tmp_path) as bot:
        assert "Joined" in await join(emu)
        ops_before = len(emu.gateway_ops)
        await emu.voice.disconnect_bot_by_moderator(emu.guild)
        await emu.wait_for(lambda: "voice session ended by Discord" in bot.log, timeout=10, what="session end")
        await settled(emu, ops_before)
        assert "Joined" in await join(emu)  # /join works again
        assert emu.voice_connected()

        await emu.voice.move_bot(emu.guild, elsewhere)
        await emu.wait_for(lambda: emu.voice.sessions(emu.guild)[-1].channel_id == elsewhere.id
                           and emu.voice_connected(), timeout=15, what="the bot reconnecting after a move")
        reply = await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
        assert reply.ephemeral and f"already in <#{elsewhere.id}>" in reply.content

        ops_before = len(emu.gateway_ops)
        await emu.voice.delete_channel(elsewhere)
        await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="the session ending with its channel")
        await settled(emu, ops_before)
        assert "Joined" in await join(emu)
        await (await speak_in_voice(emu, "Good morning everyone.")).wait_message(timeout=30)
        session = await current_session(emu)
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=0.5, timeout=30)
        assert heard_words([p.opus for p in session.audio_packets()]) == (
            "good morning everyone"
        )


async def test_voice_websocket_4006_reconnects_and_playback_goes_on(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    await (await speak_in_voice(emu, "One two three four five six seven eight nine ten.")).wait_message(timeout=30)
    first = await current_session(emu)
    await first.wait_packets(20, timeout=20)
    await emu.voice.close_voice(emu.guild, 4006)
    await emu.wait_for(lambda: len(emu.voice.sessions(emu.guild)) == 2 and emu.voice_connected(), timeout=20,
                       what="the voice reconnect")
    second = emu.voice_session()
    await second.wait_packets(10, timeout=20)
    await second.wait_idle(quiet=0.5, timeout=30)
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
    await emu.wait_for(lambda: len(segments(second)) >= 2, timeout=20, what="the next item after the reconnect")
    await second.wait_idle(quiet=0.5, timeout=30)
    assert heard_words(segments(second)[-1]) == "hello world"


@pytest.mark.parametrize(
    ("fault", "expected", "items_heard"),
    [
        (Fault(chunk_delay=15), "took too long", 2),  # far past SPEECH_TIMEOUT: a busy bot still sees a stall
        (Fault(cut_after=12_000), "stopped sending", 2),
        (Fault(cut_after=120), "stopped sending", 1),  # after the Opus headers, before any audio packet
    ],
)
async def test_a_stream_that_stalls_or_is_cut_mid_play_ends_that_item_and_the_queue_goes_on(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path, fault: Fault,
    expected: str, items_heard: int,
) -> None:
    emu = discord_emulator
    # SPEECH_TIMEOUT 5 s (well below the 15 s stall). The endpoint synthesizes a text with piper before its first byte,
    # which on a busy 2-core machine can pass 5 s for the long one: a first-byte timeout would retry and use up
    # the one-shot fault on the wrong attempt. So both texts are synthesized before the bot asks for them.
    long_text = ("One two three four five six seven eight nine ten. " * 4).strip()  # as the bot sends it
    for text in (long_text, "Thank you for listening."):
        await local_speech({"input": text, "response_format": "opus"})
    async with voice_bot(emu, speech_endpoint, tmp_path, SPEECH_TIMEOUT="5") as bot:
        # in the channel first, so that what the stall interrupts is playback, not a join
        await join(emu)
        session = await current_session(emu)
        speech_endpoint.inject(fault)
        broken = await speak_in_voice(emu, long_text)
        await broken.wait_message(timeout=30)
        nxt = await speak_in_voice(emu, "Thank you for listening.")
        await nxt.wait_message(timeout=30)

        def log() -> str:  # the bot's own lines, without the libraries' DEBUG chatter
            return "\n".join(line for line in bot.log.splitlines() if " DEBUG " not in line)[-6000:]

        try:
            error = await broken.wait_message(timeout=30, index=1)
        except TimeoutError:
            pytest.fail(f"no followup; the /speak said {[m.content for m in broken.messages]}\n{log()}")
        assert error.ephemeral and expected in error.content, log()
        await emu.wait_for(lambda: len(segments(session)) >= items_heard, timeout=30, what="the next item")
        await session.wait_idle(quiet=0.8, timeout=30)
        assert len(segments(session)) == items_heard
        assert heard_words(segments(session)[-1]) == "thank you for listening"


async def test_a_servers_own_alone_timeout_applies(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    store = await Store.open(f"sqlite:///{tmp_path / 'speechbot.db'}")
    await store.update_guild_settings(emu.guild.id, alone_timeout=1)
    await store.close()
    async with voice_bot(emu, speech_endpoint, tmp_path):  # the bot-wide default stays at 30 s
        assert "Joined" in await join(emu)
        await emu.voice.move_member(emu.user, None)
        await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="leaving after the server's 1 s")


async def test_after_a_voice_server_crash_that_is_not_resumed_the_bot_joins_again(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
    first = await current_session(emu)
    await first.wait_idle(quiet=0.5, timeout=30)
    # 4015: discord.py asks to resume with op 4 and waits for a voice server that staying in the channel does
    # not bring; after its 20 s connect timeout it leaves, and the bot joins afresh (a new voice server).
    await emu.voice.close_voice(emu.guild, 4015)
    await emu.wait_for(lambda: emu.guild.voice_state_of(emu.bot_user.id) is None, timeout=30,
                       what="discord.py giving up the resume")
    await emu.wait_for(lambda: len(emu.voice.sessions(emu.guild)) == 2 and emu.voice_connected(), timeout=15,
                       what="the bot back in voice")
    assert emu.guild.voice_state_of(emu.bot_user.id).channel_id == emu.voice_channel.id
    await (await speak_in_voice(emu, "Thank you for listening.")).wait_message(timeout=30)
    second = emu.voice_session()
    await second.wait_packets(10, timeout=20)
    await second.wait_idle(quiet=0.5, timeout=30)
    assert heard_words([p.opus for p in second.audio_packets()]) == "thank you for listening"
