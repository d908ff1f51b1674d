"""End to end: the real bot reads the chat aloud in the loopback voice channel.

What is checked is what a listener and the speech provider would notice: the words heard in each item
(segments split at the player's silence frames), and which texts reached the speech endpoint at all.
"""

from __future__ import annotations

from pathlib import Path

from bot.storage import Store
from tests.e2e.test_cli_speech import run_cli
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_chat import SUPPRESS_NOTIFICATIONS
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.voice_helpers import current_session, heard_words, segments, voice_bot

PHRASES = [
    "alice said hello world",
    "hello world",
    "bob said good morning everyone",
    "good morning everyone",
    "open the door",
    "alice said open the door",
    "thank you for listening",
    "alice said thank you for listening",
    "bob said thank you for listening",
    "alice joined",
    "one two three four five six seven eight nine ten",
    "alice said one two three four five six seven eight nine ten",
]


def heard(session) -> list[str | None]:  # noqa: ANN001 - the emulator's VoiceSession
    return [heard_words(segment, PHRASES) for segment in segments(session)]


def sent_texts(endpoint: SpeechEndpoint) -> list[str]:
    return [request.json["input"] for request in endpoint.requests]


async def join(emu: DiscordEmulator) -> None:
    interaction = await emu.invoke("join", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    await interaction.wait_message(timeout=30)


async def wait_items(emu: DiscordEmulator, session, count: int) -> None:  # noqa: ANN001
    await emu.wait_for(lambda: len(segments(session)) >= count, timeout=40, what=f"{count} items played")
    await session.wait_idle(quiet=1.5, timeout=40)


async def test_voice_chat_is_read_with_skips_deletes_and_edits(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    chat, here = emu.chat, emu.voice_channel  # no read channel configured: the voice channel's own chat
    async with voice_bot(emu, speech_endpoint, tmp_path):
        await join(emu)
        session = await current_session(emu)

        await chat.send(emu.user, here, "Hello world!")
        await chat.send(emu.other_user, here, "Not in voice, not read.")  # bob is not in the voice channel
        await chat.send(emu.user, here, ";an opted-out aside")
        await chat.send(emu.user, here, "a silent message", flags=SUPPRESS_NOTIFICATIONS)
        await chat.send(emu.bot_user, here, "the bot's own message")
        await chat.send(emu.owner, here, "a webhook message", webhook=True)
        await chat.send(emu.user, here, "\u3164 \u200b\u2060\u202e\u2800")  # looks empty, says nothing: skipped
        await chat.send(emu.user, here, "Thank you for listening.")
        await wait_items(emu, session, 2)
        assert heard(session) == ["alice said hello world", "thank you for listening"]
        # the next message is synthesized while one plays, so requests may arrive in either order; on this shared
        # machine a cold endpoint can pass the 2 s timeout, and a retried request is sent twice
        first_texts = set(sent_texts(speech_endpoint))
        assert first_texts == {"Alice said, Hello world!", "Thank you for listening."}
        sent_before = len(speech_endpoint.requests)

        deleted = await chat.send(emu.user, here, "Good morning everyone.")
        edited = await chat.send(emu.user, here, "Open the door.")
        purged = [await chat.send(emu.user, here, text) for text in ("Open the door.", "Good morning everyone.")]
        await chat.delete(deleted)  # within the hold: never heard
        await chat.edit(edited, "Hello world.")
        await chat.bulk_delete(purged)
        await wait_items(emu, session, 3)
        assert heard(session)[2:] == ["hello world"]
        # The default hold mode asks for a message at once when nothing waits before it, so the deleted one may
        # have reached the speech service (tests/e2e/test_hold.py: never in strict mode); the others waited.
        assert set(sent_texts(speech_endpoint)[sent_before:]) in ({"Hello world."},
                                                                  {"Good morning everyone.", "Hello world."})

        long = await chat.send(emu.user, here, "One two three four five six seven eight nine ten. " * 3)
        await emu.wait_for(lambda: len(segments(session)) >= 4 and len(segments(session)[3]) >= 25, timeout=40,
                           what="the long message playing")
        await chat.delete(long)
        await session.wait_idle(quiet=1.5, timeout=40)
        played = segments(session)[3]
        assert len(played) < 150  # the whole text is about 12 s (600 packets): stopped early
        assert session.check_stream() == []
    # chat audio is cached in memory only: nothing said in a channel is written to disk
    assert [path for path in (tmp_path / "cache").rglob("*") if path.is_file()] == []


async def test_authors_take_turns(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    await emu.move_member(emu.other_user, emu.voice_channel)
    async with voice_bot(emu, speech_endpoint, tmp_path):
        await join(emu)
        session = await current_session(emu)
        for text in ("Hello world.", "Open the door.", "Thank you for listening."):  # alice floods first
            await emu.chat.send(emu.user, emu.voice_channel, text)
        for text in ("Good morning everyone.", "Thank you for listening."):
            await emu.chat.send(emu.other_user, emu.voice_channel, text)
        await wait_items(emu, session, 5)
        assert heard(session) == [
            "alice said hello world",
            "bob said good morning everyone",
            "alice said open the door",
            "bob said thank you for listening",
            "alice said thank you for listening",
        ]


async def test_autojoin_reads_the_read_channel_and_leaves_when_alone(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    store = await Store.open(f"sqlite:///{tmp_path / 'speechbot.db'}")
    await store.update_guild_settings(emu.guild.id, autojoin=True, read_channel_ids=[emu.text_channel.id],
                                      announce_joins=True, name_mode="username")
    await store.close()
    await emu.move_member(emu.user, None)
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_ALONE_TIMEOUT="1") as bot:
        await emu.move_member(emu.other_user, emu.voice_channel)  # bob joins: the bot follows
        await emu.wait_for(emu.voice_connected, timeout=20, what="the bot autojoining")
        # the bot registers its session (and logs it) just after the voice connection is up
        await emu.wait_for(lambda: f"joined voice (guild={emu.guild.id} " in bot.log, timeout=10,
                           what="the bot's voice session")
        session = await current_session(emu)
        await emu.chat.send(emu.other_user, emu.text_channel, "Good morning everyone.")
        await emu.chat.send(emu.other_user, emu.voice_channel, "Not a read channel.")
        await wait_items(emu, session, 1)
        await emu.move_member(emu.user, emu.voice_channel)  # announced, with the name cleaned like text
        await wait_items(emu, session, 2)
        assert heard(session) == ["bob said good morning everyone", "alice joined"]
        assert sent_texts(speech_endpoint) == ["bob said, Good morning everyone.", "alice joined."]
        await emu.chat.send(emu.other_user, emu.text_channel, f"<@{emu.user.id}> hello world", mentions=[emu.user])
        await wait_items(emu, session, 3)
        # mentions are named like authors; after an announcement the name is said again
        assert sent_texts(speech_endpoint)[2:] == ["bob said, alice hello world"]
        original = await emu.chat.send(emu.owner, emu.text_channel, "Open the door.")  # the owner is not in voice
        await emu.chat.send(emu.other_user, emu.text_channel, "", forward_of=original)
        await wait_items(emu, session, 4)
        assert sent_texts(speech_endpoint)[3:] == ["a forwarded message: Open the door."]
        await emu.move_member(emu.user, None)

        await emu.move_member(emu.other_user, None)  # alone: the bot leaves
        await emu.wait_for(lambda: not emu.voice_connected(), timeout=20, what="the bot leaving when alone")


async def test_check_and_run_say_when_the_message_content_intent_is_off(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    env = {**emu.env(), "SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY}
    code, out, _ = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0 and "the Message Content intent is on" in out.decode()

    emu.application_flags = 0
    code, out, _ = await run_cli("check", env=env, cwd=tmp_path)
    text = out.decode()
    assert code == 1 and "Message Content intent is off" in text and "Privileged Gateway Intents" in text

    # The bot still runs, with read-aloud off, says how to turn it on, and /speak works.
    async with voice_bot(emu, speech_endpoint, tmp_path) as bot:
        assert "read-aloud is off" in bot.log and "Privileged Gateway Intents" in bot.log
        assert emu.sessions[-1].intents & (1 << 15) == 0  # MESSAGE_CONTENT not asked for
        interaction = await emu.invoke("speak", {"text": "Hello world."}, user=emu.user, guild=emu.guild,
                                       channel=emu.text_channel)
        assert (await interaction.wait_message(timeout=30)).attachments
