"""Coming back to voice after a restart: the real bot, SIGTERM, the same DATA_DIR, and the loopback Discord.

A graceful stop leaves voice but keeps the channel in the database; the next start rejoins it by itself. Every
other end of a session (``/leave``, idle or alone, a moderator's disconnect, a deleted channel) forgets it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.voice_helpers import heard_words, join, speak_in_voice, voice_bot


async def remembered(data_dir: Path) -> list[tuple[int, int]]:
    """What the bot's database holds (read after the bot stopped, so it is final)."""
    store = await Store.open(f"sqlite:///{data_dir / 'speechbot.db'}", cache_ttl=0)
    try:
        return [(record.guild_id, record.channel_id) for record in await store.voice_sessions()]
    finally:
        await store.close()


def bot_channel(emu: DiscordEmulator) -> int | None:
    """The voice channel Discord shows the bot in (its voice state), or None."""
    state = emu.guild.voice_state_of(emu.bot_user.id)
    return state.channel_id if state is not None else None


async def test_after_a_graceful_restart_the_bot_is_back_in_its_channel_and_speaks_without_join(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path):
        assert "Joined" in await join(emu)
        assert bot_channel(emu) == emu.voice_channel.id
    # SIGTERM (running_bot checked exit 0): the bot left voice, but remembers where it was
    assert bot_channel(emu) is None and not emu.voice_connected()
    assert await remembered(tmp_path) == [(emu.guild.id, emu.voice_channel.id)]
    sessions_before = len(emu.voice.sessions(emu.guild))

    async with voice_bot(emu, speech_endpoint, tmp_path) as bot:
        await emu.wait_for(lambda: "rejoined 1 of 1 remembered voice sessions (shard=0)" in bot.log, timeout=30,
                           what="the rejoin pass")
        assert emu.voice_connected() and len(emu.voice.sessions(emu.guild)) > sessions_before
        assert bot_channel(emu) == emu.voice_channel.id
        reply = await (await speak_in_voice(emu, "Hello world.")).wait_message(timeout=30)
        assert not reply.ephemeral and f"<#{emu.voice_channel.id}>" in reply.content
        session = emu.voice_session()
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=0.5, timeout=30)
        assert session.check_stream() == []
        assert heard_words([p.opus for p in session.audio_packets()]) == "hello world"
    assert await remembered(tmp_path) == [(emu.guild.id, emu.voice_channel.id)]  # still there for the next one


async def test_after_leave_a_restart_does_not_rejoin(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path):
        assert "Joined" in await join(emu)
        left = await emu.invoke("leave", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
        assert "Left" in (await left.wait_message(timeout=30)).content
    assert await remembered(tmp_path) == []

    async with voice_bot(emu, speech_endpoint, tmp_path) as bot:
        await emu.wait_for(lambda: "rejoined 0 of 0 remembered voice sessions (shard=0)" in bot.log, timeout=30,
                           what="the rejoin pass")
        assert bot_channel(emu) is None and not emu.voice_connected()


async def test_a_channel_deleted_while_the_bot_was_down_is_not_rejoined_and_is_forgotten(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path):
        assert "Joined" in await join(emu)
    await emu.voice.delete_channel(emu.voice_channel)  # while the bot is down (alice leaves voice with it)

    async with voice_bot(emu, speech_endpoint, tmp_path) as bot:
        await emu.wait_for(lambda: "rejoined 0 of 1 remembered voice sessions (shard=0)" in bot.log, timeout=30,
                           what="the rejoin pass")
        assert "not rejoining voice" in bot.log and "the channel is gone" in bot.log
        assert bot_channel(emu) is None and not emu.voice_connected()
    assert await remembered(tmp_path) == []


@pytest.mark.parametrize("how", ["kicked", "alone", "moved"])
async def test_every_other_end_of_a_session_is_forgotten_and_a_move_is_followed(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path, how: str
) -> None:
    emu = discord_emulator
    elsewhere = emu.build.channel(emu.guild, "Elsewhere", type=2)
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_ALONE_TIMEOUT="0.5") as bot:
        assert "Joined" in await join(emu)
        if how == "kicked":
            await emu.voice.disconnect_bot_by_moderator(emu.guild)
            await emu.wait_for(lambda: "voice session ended by Discord" in bot.log, timeout=10, what="the end")
        elif how == "alone":
            await emu.voice.move_member(emu.user, None)
            await emu.wait_for(lambda: "reason=alone" in bot.log, timeout=10, what="leaving when alone")
        else:
            await emu.voice.move_member(emu.user, elsewhere)  # so that the bot is not alone there
            await emu.voice.move_bot(emu.guild, elsewhere)
            await emu.wait_for(lambda: emu.voice_connected() and emu.voice_session().channel_id == elsewhere.id,
                               timeout=15, what="the bot reconnecting after the move")
    assert await remembered(tmp_path) == ([(emu.guild.id, elsewhere.id)] if how == "moved" else [])
