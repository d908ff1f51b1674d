"""End to end under Discord faults: the real bot process against the loopback Discord when it misbehaves.

Gateway connections cut (abruptly, with a close code, by op 7 RECONNECT, by op 9 INVALID_SESSION), REST
routes answering 429 (Discord's own, with its headers, and Cloudflare's ban) or 5xx, and a speech endpoint
that never answers. What is checked is what users and Discord would see: replies (exactly once), audio in
the voice channel, the ops the bot sent, and a clean log.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_gateway import IDENTIFY, RESUME, VOICE_STATE_UPDATE, GatewaySession
from tests.loopback.discord_rest import RestCall
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.bot_fixtures import speak
from tests.support.bot_process import BotProcess, log_problems, running_bot
from tests.support.voice_helpers import current_session, heard_words, segments, speak_in_voice, voice_bot

API_KEY = SPEECH_TEST_KEY


def ops(emu: DiscordEmulator, op: int) -> int:
    return sum(1 for sent, _ in emu.gateway_ops if sent == op)


async def disconnected(emu: DiscordEmulator, session: GatewaySession) -> None:
    await emu.wait_for(lambda: not emu.gateway.connected(session), timeout=10, what="the gateway connection to end")


async def resumed(emu: DiscordEmulator, session: GatewaySession) -> None:
    await emu.wait_for(lambda: session.resumes and emu.gateway.connected(session), timeout=20, what="the bot's RESUME")


async def cut(emu: DiscordEmulator, how: str) -> None:
    if how == "abrupt":
        await emu.drop_gateway()
    elif how == "reconnect":
        await emu.request_reconnect()
    elif how == "invalid-resumable":
        await emu.invalidate_session(resumable=True)
    else:
        await emu.drop_gateway(int(how))


@pytest.mark.parametrize("how", ["abrupt", "4000", "1001", "reconnect", "invalid-resumable"])
async def test_the_bot_resumes_and_answers_what_came_while_it_was_away(
    bot: BotProcess, discord_emulator: DiscordEmulator, how: str
) -> None:
    emu = discord_emulator
    session = await emu.wait_ready()
    before = await speak(emu, text="Hello world.")
    assert not (await before.wait_message(timeout=30)).ephemeral

    async with emu.gateway_outage():
        await cut(emu, how)
        await disconnected(emu, session)
        missed = await emu.invoke("voices", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    await resumed(emu, session)

    reply = await missed.wait_message(timeout=10)  # replayed on RESUME, answered within the 3 s deadline
    assert reply.ephemeral and "Voices:" in reply.content
    after = await speak(emu, text="Good morning everyone.")
    message = await after.wait_message(timeout=30)
    assert not message.ephemeral and message.attachments
    assert len(missed.messages) == 1 and len(after.messages) == 1
    assert (ops(emu, IDENTIFY), ops(emu, RESUME)) == (1, 1)
    assert session.replayed >= 1 and emu.sessions == [session]
    bot.assert_alive()


LONG = "One two three four five six seven eight nine ten."
VOICE_PHRASES = ["one two three four five six seven eight nine ten", "alice said hello world", "hello world",
                 "thank you for listening", "good morning everyone"]


def heard(session) -> list[str | None]:  # noqa: ANN001 - the emulator's VoiceSession
    return [heard_words(segment, VOICE_PHRASES) for segment in segments(session)]


async def test_voice_keeps_playing_across_a_gateway_drop_and_reads_what_was_said_meanwhile(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path):
        gateway = await emu.wait_ready()
        await (await speak_in_voice(emu, LONG)).wait_message(timeout=30)
        voice = await current_session(emu)
        await voice.wait_packets(10, timeout=20)

        async with emu.gateway_outage():
            await emu.drop_gateway()
            await disconnected(emu, gateway)
            await emu.chat.send(emu.user, emu.voice_channel, "Hello world.")  # read-aloud: missed, replayed
            playing = len(voice.packets)
            await voice.wait_packets(playing + 25, timeout=10)  # the voice connection does not need the gateway
        await resumed(emu, gateway)
        await emu.wait_for(lambda: any(r.json["input"] == "Alice said, Hello world." for r in speech_endpoint.requests),
                           timeout=20, what="the missed message going to synthesis")
        # Synthesis starts during the 1 s moderation hold (the default hold mode); the message joins the voice
        # queue when the hold ends, so the /speak below comes after it.
        await asyncio.sleep(1.5)

        reply = await (await speak_in_voice(emu, "Thank you for listening.")).wait_message(timeout=30)
        assert not reply.ephemeral and f"<#{emu.voice_channel.id}>" in reply.content
        await emu.wait_for(lambda: len(segments(voice)) >= 3, timeout=40, what="three items played")
        await voice.wait_idle(quiet=1.0, timeout=40)

        assert heard(voice) == [VOICE_PHRASES[0], "alice said hello world", "thank you for listening"]
        assert voice.check_stream() == []
        assert emu.voice.sessions(emu.guild) == [voice] and emu.voice_connected()  # one voice session, still up
        assert (ops(emu, IDENTIFY), ops(emu, RESUME), ops(emu, VOICE_STATE_UPDATE)) == (1, 1, 1)


async def test_an_invalidated_session_is_identified_again_and_the_bot_works(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    first = await emu.wait_ready()
    await emu.invalidate_session(resumable=False)
    # discord.py waits 5 s before identifying again (before_identify_hook)
    second = await emu.wait_for(lambda: next((s for s in emu.sessions if s.ready and s is not first), None),
                                timeout=30, what="a new IDENTIFY")
    assert first.id in emu.gateway.invalidated and emu.sessions == [second]
    message = await (await speak(emu, text="Hello world.")).wait_message(timeout=30)
    assert not message.ephemeral and message.attachments
    assert (ops(emu, IDENTIFY), ops(emu, RESUME)) == (2, 0)
    bot.assert_alive()


async def test_voice_sessions_are_kept_and_controllable_after_the_bot_identifies_again(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    """After op 9 false discord.py starts a new session and forgets its voice clients (``parse_ready`` clears
    them) and rebuilds every guild, while Discord keeps the bot in its channel and the voice connection up."""
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path, VOICE_ALONE_TIMEOUT="0.5") as bot:
        first = await emu.wait_ready()
        await (await speak_in_voice(emu, LONG)).wait_message(timeout=30)
        voice = await current_session(emu)
        await voice.wait_packets(10, timeout=20)
        await emu.invalidate_session(resumable=False)
        await emu.wait_for(lambda: next((s for s in emu.sessions if s.ready and s is not first), None),
                           timeout=30, what="a new IDENTIFY")
        await emu.wait_for(lambda: bot.log.count("bot.app: ready as") == 2, timeout=10, what="the second on_ready")

        reply = await (await speak_in_voice(emu, "Thank you for listening.")).wait_message(timeout=30)
        assert not reply.ephemeral and f"<#{emu.voice_channel.id}>" in reply.content
        await emu.wait_for(lambda: len(segments(voice)) >= 2, timeout=40, what="two items played")
        await voice.wait_idle(quiet=1.0, timeout=40)
        assert heard(voice) == [VOICE_PHRASES[0], "thank you for listening"]
        assert emu.voice.sessions(emu.guild) == [voice] and voice.check_stream() == []

        # The leave timers see the channel as it is now: everyone leaves, the bot follows (0.5 s alone timeout).
        await emu.voice.move_member(emu.user, None)
        await emu.wait_for(lambda: not emu.voice_connected(), timeout=10, what="the bot leaving when alone")
        await emu.wait_for(lambda: "left voice" in bot.log, timeout=10, what="the leave to complete")  # not 20 s
        await emu.voice.move_member(emu.user, emu.voice_channel)
        joined = await emu.invoke("join", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
        assert "Joined" in (await joined.wait_message(timeout=10)).content
        assert emu.voice_connected() and len(emu.voice.sessions(emu.guild)) == 2


# -- REST: 429 and 5xx -------------------------------------------------------------------------------------

FOLLOWUP = r"^/webhooks/\d+/[^/]+$"  # POST: a followup (here: the file /speak posts)
CALLBACK = r"^/interactions/\d+/[^/]+/callback$"  # POST: the initial response (here: the deferral)


def secrets_in_log(bot: BotProcess, emu: DiscordEmulator) -> list[str]:
    """Credentials that must never be logged: the bot token, the API key, and interaction tokens (each one
    lets whoever holds it post and edit as the bot for 15 minutes)."""
    log = bot.log
    found = [name for name, value in (("bot token", emu.token), ("API key", API_KEY)) if value in log]
    return found + [f"interaction {i.id} token" for i in emu.interactions.values() if i.token in log]


def calls(emu: DiscordEmulator, method: str, path_regex: str) -> list[RestCall]:
    return [c for c in emu.rest_calls if c.method == method and re.search(path_regex, c.path)]


@pytest.mark.parametrize(("route", "scope", "times"), [(FOLLOWUP, "user", 2), (CALLBACK, "shared", 1)])
async def test_a_rate_limited_reply_is_sent_again_after_the_wait_and_arrives_once(
    bot: BotProcess, discord_emulator: DiscordEmulator, route: str, scope: str, times: int
) -> None:
    emu = discord_emulator
    emu.rate_limit("POST", route, times=times, retry_after=0.6, scope=scope)  # the emulator enforces the wait
    interaction = await speak(emu, text="Hello world.")
    message = await interaction.wait_message(timeout=30)
    assert not message.ephemeral and message.attachments
    assert interaction.messages == [message] and not interaction.original_deleted
    assert [c.status for c in calls(emu, "POST", route)] == [429] * times + [200]
    assert emu.faults_left() == 0
    await emu.wait_for(lambda: "rate limited" in bot.log, timeout=5, what="discord.py's rate-limit warning")
    assert secrets_in_log(bot, emu) == []


async def voices(emu: DiscordEmulator) -> str:
    """Run /voices (answered at once, no speech involved) and return its ephemeral reply."""
    interaction = await emu.invoke("voices", {}, user=emu.user, guild=emu.guild, channel=emu.text_channel)
    reply = await interaction.wait_message(timeout=10)
    assert reply.ephemeral
    return reply.content


async def test_a_cloudflare_ban_is_not_retried_the_user_is_told_and_the_bot_goes_on(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    emu.cloudflare_ban("POST", FOLLOWUP)
    interaction = await speak(emu, text="Hello world.")
    error = await interaction.wait_message(timeout=30)
    assert error.ephemeral and "Discord" in error.content and "Traceback" not in error.content
    assert not error.attachments and interaction.original_deleted
    assert [c.status for c in calls(emu, "POST", FOLLOWUP)] == [429, 200]  # the upload once, then the error
    await emu.wait_for(lambda: "command speak: Discord answered 429" in bot.log and "Cloudflare ban" in bot.log,
                       timeout=5, what="the log line")
    assert "Voices:" in await voices(emu)
    assert secrets_in_log(bot, emu) == [] and log_problems(bot.log, (API_KEY, emu.token)) == []


@pytest.mark.parametrize(("route", "status", "times"), [(FOLLOWUP, 502, 2), (FOLLOWUP, 503, 1), (CALLBACK, 500, 1)])
async def test_a_discord_server_error_is_retried_and_the_reply_arrives_once(
    bot: BotProcess, discord_emulator: DiscordEmulator, route: str, status: int, times: int
) -> None:
    emu = discord_emulator
    emu.server_error("POST", route, status, times=times)
    interaction = await speak(emu, text="Hello world.")
    message = await interaction.wait_message(timeout=30)
    assert not message.ephemeral and message.attachments and interaction.messages == [message]
    assert [c.status for c in calls(emu, "POST", route)] == [status] * times + [200]
    assert secrets_in_log(bot, emu) == []


async def test_an_upload_discord_keeps_failing_ends_in_one_log_line_and_the_bot_stays_responsive(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    emu = discord_emulator
    emu.server_error("POST", FOLLOWUP, 503, times=5)  # discord.py tries 5 times over 25 s, then gives up
    interaction = await speak(emu, text="Hello world.")
    await emu.wait_for(lambda: calls(emu, "POST", FOLLOWUP), timeout=30, what="the first upload")
    assert "Voices:" in await voices(emu)  # answered while the upload is being retried

    error = await interaction.wait_message(timeout=60)
    assert error.ephemeral and "Discord" in error.content and not error.attachments
    assert [c.status for c in calls(emu, "POST", FOLLOWUP)] == [503] * 5 + [200]
    lines = [line for line in bot.log.splitlines() if "command speak: Discord answered 503" in line]
    assert len(lines) == 1, bot.log
    message = await (await speak(emu, text="Good morning everyone.")).wait_message(timeout=30)
    assert not message.ephemeral and message.attachments
    assert secrets_in_log(bot, emu) == [] and log_problems(bot.log, (API_KEY, emu.token)) == []


async def test_rate_limits_at_start_up_are_waited_out_global_ones_for_every_route(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    emu.rate_limit("GET", r"^/oauth2/applications/@me$", retry_after=0.8, scope="global")
    emu.rate_limit("PUT", r"^/applications/\d+/guilds/\d+/commands$", times=2, retry_after=0.5, scope="user")
    async with running_bot(emu, tmp_path, SPEECH_API_BASE_URL=speech_endpoint.base_url, SPEECH_API_KEY=API_KEY):
        assert [c.status for c in calls(emu, "PUT", "/commands$")] == [429, 429, 200]
        applications = [c.status for c in calls(emu, "GET", "^/oauth2/")]  # the intent check, then discord.py
        assert applications[0] == 429 and set(applications[1:]) == {200}
        message = await (await speak(emu, text="Hello world.")).wait_message(timeout=30)
        assert not message.ephemeral and message.attachments
    # the emulator recorded any request sent while a limit (the global one: any bot route) still applied


# -- a speech endpoint that never answers ------------------------------------------------------------------

SPEECH_TIMEOUT = 3.0  # the ``bot`` fixture's
#: Three attempts of SPEECH_TIMEOUT each, the backoff between them (≤ 0.5 s, then ≤ 1 s), and a margin.
HANG_BOUND = 3 * SPEECH_TIMEOUT + 1.5 + 4


async def test_a_speech_endpoint_that_never_answers_gets_a_timely_reply_and_other_commands_go_on(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    emu = discord_emulator
    speech_endpoint.inject(Fault(hang=True, times=3))  # accepts the request, never sends headers or a byte
    interaction = await speak(emu, text="Hello world.")
    assert (await interaction.wait_response(timeout=5)).type == 5
    await emu.wait_for(lambda: speech_endpoint.requests, timeout=10, what="the speech request")

    assert "Voices:" in await voices(emu)  # the bot answers others while the synthesis hangs
    assert interaction.messages == []

    error = await interaction.wait_message(timeout=HANG_BOUND)
    assert error.ephemeral and "took too long" in error.content and interaction.original_deleted
    assert len(speech_endpoint.requests) == 3 and speech_endpoint.failures == []
    message = await (await speak(emu, text="Good morning everyone.")).wait_message(timeout=30)
    assert not message.ephemeral and message.attachments
