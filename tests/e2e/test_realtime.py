"""End to end with the Realtime engine: the real bot process (``SPEECH_MODEL=gpt-realtime-2.1-mini``) against the
loopback Discord and the strict loopback Realtime API, over real sockets.

What is checked is what users and the operator would notice: files that decode and say the words, words heard in
the voice channel, replies (and that they name the offline voice when it spoke), ``/usage``, ``/metrics``, and
what reached the Realtime double (which fails the test on any protocol violation).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.audio.formats import AudioFormat, sniff
from bot.storage import Store
from tests.e2e.test_cli_speech import run_cli
from tests.loopback.discord import DiscordEmulator
from tests.loopback.realtime_fixtures import REALTIME_MODEL
from tests.loopback.realtime_server import Fault, FaultKind, RealtimeEndpoint
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.support.audio_check import recognize_audio
from tests.support.bot_process import BotProcess, running_bot
from tests.support.metrics import free_port, sample
from tests.support.voice_helpers import current_session, heard_words, segments, speak_in_voice

PHRASES = ["hello world", "good morning everyone", "please join the voice channel", "thank you for listening",
           "alice said hello world", "alice said thank you for listening", "open the door"]
OFFLINE_NOTE = "Said by the offline voice instead of alloy, because the speech service"


@asynccontextmanager
async def realtime_bot(emu: DiscordEmulator, base_url: str, tmp_path: Path, **env: str) -> AsyncIterator[BotProcess]:
    settings = {"SPEECH_API_BASE_URL": base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY, "SPEECH_MODEL": REALTIME_MODEL,
                "SPEECH_TIMEOUT": "3", **env}
    async with running_bot(emu, tmp_path, **settings) as process:
        yield process


async def speak(emu: DiscordEmulator, text: str, **options: Any):  # noqa: ANN201 - the emulator's interaction
    return await emu.invoke("speak", {"text": text, **options}, user=emu.user, guild=emu.guild,
                            channel=emu.text_channel)


async def speak_file(emu: DiscordEmulator, text: str, **options: Any) -> tuple[bytes, str]:
    """``/speak`` that must post a file: its bytes and the reply's text."""
    message = await (await speak(emu, text, **options)).wait_message(timeout=40)
    assert not message.ephemeral and message.attachments, message.content
    return message.attachments[0].data, message.content


async def refusal(emu: DiscordEmulator, text: str, fault: Fault | None = None, **options: Any) -> str:
    """``/speak`` that must fail: the ephemeral reply's text (no file, no key, no traceback)."""
    interaction = await speak(emu, text, **options)
    message = await interaction.wait_message(timeout=40)
    assert message.ephemeral and not message.attachments, (fault, message.content)
    assert SPEECH_TEST_KEY not in message.content and "Traceback" not in message.content
    return message.content


async def ephemeral(emu: DiscordEmulator, command: str, **options: Any) -> str:
    response = await (await emu.invoke(command, options, user=emu.user, guild=emu.guild,
                                       channel=emu.text_channel)).wait_response(timeout=5)
    assert response.ephemeral
    return response.data.get("content") or ""


def dead_url() -> str:
    """A base URL where nothing listens: the primary is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_speak_files_in_every_format_say_the_words(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_FALLBACK="none"):
        for fmt in ("opus", "wav", "flac", "aac", "pcm"):
            data, caption = await speak_file(emu, "Good morning everyone.", voice="marin", format=fmt, speed=1.25)
            assert "Said by" not in caption
            served = realtime_endpoint.responses[-1]
            assert (served.text, served.voice, served.speed) == ("Good morning everyone.", "marin", 1.25)
            if fmt == "pcm":
                assert data == served.pcm  # the Realtime API's own pcm, passed through
            else:
                assert sniff(data[:12]) is AudioFormat(fmt)
            assert recognize_audio(data, AudioFormat(fmt), PHRASES) == "good morning everyone", fmt
    [upgrade, *_] = realtime_endpoint.upgrades
    assert "OpenAI-Beta" not in upgrade and upgrade["Authorization"] == f"Bearer {SPEECH_TEST_KEY}"
    assert {c.model for c in realtime_endpoint.connections} == {REALTIME_MODEL}
    # warm sessions: the spare took marin, then marin's session kept serving (speed changes in between)
    assert len({id(r.connection) for r in realtime_endpoint.responses}) == 1


async def test_speak_in_voice_and_read_aloud_are_heard(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_FALLBACK="none"):
        interaction = await speak_in_voice(emu, "Please join the voice channel.")
        message = await interaction.wait_message(timeout=30)
        assert not message.ephemeral and f"<#{emu.voice_channel.id}>" in message.content
        session = await current_session(emu)
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=1.0, timeout=30)
        assert [heard_words(segment, PHRASES) for segment in segments(session)] == ["please join the voice channel"]

        await emu.chat.send(emu.user, emu.voice_channel, "Thank you for listening!")
        await emu.wait_for(lambda: len(segments(session)) >= 2, timeout=40, what="the chat message read")
        await session.wait_idle(quiet=1.0, timeout=40)
        assert heard_words(segments(session)[1], PHRASES) == "alice said thank you for listening"
        assert realtime_endpoint.texts == ["Please join the voice channel.", "Alice said, Thank you for listening!"]
        assert session.check_stream() == []


FAULTS = [
    (Fault(FaultKind.RATE_LIMIT, times=3, reset_seconds=0.2), "busy"),
    (Fault(FaultKind.NO_CREDIT), "out of credit"),
    (Fault(FaultKind.SERVER_ERROR, times=3), "having problems"),
    (Fault(FaultKind.UPGRADE_ERROR, status=503, times=4), "having problems"),  # 3 attempts (and maybe a spare)
    (Fault(FaultKind.MODEL_NOT_FOUND, times=2), "SPEECH_MODEL"),
    (Fault(FaultKind.INVALID_MODEL, times=2), "as a Realtime model"),
    (Fault(FaultKind.CLOSE_MID_RESPONSE, after_deltas=4, times=2), "stopped sending audio before the end"),
    (Fault(FaultKind.SLOW_FIRST_DELTA, delay=8, times=3), "took too long"),
    (Fault(FaultKind.REWORDED, times=2), "said something other than the text"),
    (Fault(FaultKind.POLICY), "content policy"),
]


async def test_every_fault_is_a_clear_reply_and_the_next_speak_works(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_FALLBACK="none") as bot:
        for fault, expected in FAULTS:
            if fault.kind in (FaultKind.UPGRADE_ERROR, FaultKind.MODEL_NOT_FOUND, FaultKind.INVALID_MODEL):
                # the warm sessions go: the next request must connect
                await realtime_endpoint.cut_all()
            realtime_endpoint.inject(fault)
            reply = await refusal(emu, "Please join the voice channel. Thank you for listening.", fault=fault)
            assert expected in reply, (fault, reply)
            realtime_endpoint.clear_faults()
            data, _ = await speak_file(emu, "Hello world.")
            assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == "hello world", fault
            bot.assert_alive()
        # out of sight: an expired session, a slow but timely first delta, one reworded reading (asked again)
        for fault in (Fault(FaultKind.SESSION_EXPIRED), Fault(FaultKind.SLOW_FIRST_DELTA, delay=1.0),
                      Fault(FaultKind.REWORDED)):
            realtime_endpoint.inject(fault)
            data, _ = await speak_file(emu, "Good morning everyone.")
            assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == "good morning everyone", fault
        # a voice this service does not offer (the SDK lists it; this endpoint does not)
        realtime_endpoint.voices = tuple(v for v in realtime_endpoint.voices if v != "cedar")
        assert "does not offer the voice 'cedar'" in await refusal(emu, "Hello world.", voice="cedar")
        # what the engine cannot do is refused before anything is sent
        sent = len(realtime_endpoint.responses)
        assert "between 0.25 and 1.5" in await refusal(emu, "Hello world.", speed=2.0)
        assert len(realtime_endpoint.responses) == sent
    assert SPEECH_TEST_KEY not in bot.log and "Please join the voice channel" not in bot.log


async def test_a_wrong_key_and_a_gone_model_are_named_and_never_fall_back_on_a_key(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_API_KEY="sk-test-wrong-key-000000"):
        # the offline engine is installed and SPEECH_FALLBACK is left to its default (local), yet a rejected key
        # and a request the service refused are the owner's and the user's to see
        assert "API key" in await refusal(emu, "Hello world.")
        assert len(realtime_endpoint.connections) == 0 and realtime_endpoint.upgrades
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path):
        realtime_endpoint.inject(Fault(FaultKind.POLICY))
        assert "content policy" in await refusal(emu, "Hello world.")
        realtime_endpoint.voices = ("alloy", "marin")
        assert "does not offer the voice 'cedar'" in await refusal(emu, "Hello world.", voice="cedar")


async def test_a_dead_primary_falls_back_to_the_offline_voice_in_a_file_and_in_voice(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with realtime_bot(emu, dead_url(), tmp_path) as bot:  # SPEECH_FALLBACK: the default, local
        data, caption = await speak_file(emu, "Good morning everyone.")
        assert f"{OFFLINE_NOTE} is not answering right now." in caption
        assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == "good morning everyone"

        interaction = await speak_in_voice(emu, "Please join the voice channel.")
        assert not (await interaction.wait_message(timeout=30)).ephemeral
        note = await interaction.wait_message(timeout=30, index=1)
        assert note.ephemeral and f"{OFFLINE_NOTE} is not answering right now." in note.content
        session = await current_session(emu)
        await session.wait_packets(10, timeout=20)
        await session.wait_idle(quiet=1.0, timeout=30)
        assert [heard_words(segment, PHRASES) for segment in segments(session)] == ["please join the voice channel"]
    # the operator is told once, with the reason
    warnings = [line for line in bot.log.splitlines() if "cannot serve (outage" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]


async def test_a_gone_model_falls_back_and_usage_shows_the_offline_characters_apart(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    store = await Store.open(f"sqlite:///{tmp_path / 'speechbot.db'}")
    await store.update_guild_settings(emu.guild.id, daily_char_budget=1000)
    await store.close()
    # a dated model the service no longer serves: every session is refused with model_not_found
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_MODEL="gpt-realtime-2025-08-28"):
        data, caption = await speak_file(emu, "Hello world.")
        assert f"{OFFLINE_NOTE} no longer offers its model." in caption
        assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == "hello world"
        usage = await ephemeral(emu, "usage")
        assert "Today: 0 characters in 0 requests of a 1,000 budget (1,000 left)" in usage
        assert "Said by the offline voice" in usage and "this month 12 characters" in usage
    assert realtime_endpoint.responses == [] and realtime_endpoint.errors_sent[0]["code"] == "model_not_found"


async def test_no_credit_falls_back_and_the_metrics_count_it(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu, port = discord_emulator, free_port()
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, METRICS_PORT=str(port)):
        data, caption = await speak_file(emu, "Thank you for listening.")
        assert "Said by" not in caption
        realtime_endpoint.inject(Fault(FaultKind.NO_CREDIT))
        data, caption = await speak_file(emu, "Good morning everyone.")
        assert f"{OFFLINE_NOTE} is out of credit." in caption
        assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == "good morning everyone"
        data, caption = await speak_file(emu, "Hello world.")  # the service is left alone for a while
        assert "out of credit" in caption and len(realtime_endpoint.responses) == 2
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    assert sample(text, "speechbot_speech_failovers_total", engine="local", reason="no_credit") == 2
    assert (sample(text, "speechbot_speech_tokens_total", backend="realtime", kind="output_audio") or 0) > 0
    assert sample(text, "speechbot_speech_transcript_checks_total", backend="realtime", result="ok") == 1
    assert sample(text, "speechbot_speech_requests_total", backend="local", outcome="ok", status="200") == 2


async def test_saved_choices_the_realtime_engine_lacks_fall_back_told_once(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    store = await Store.open(f"sqlite:///{tmp_path / 'speechbot.db'}")
    await store.set_user_prefs(emu.user.id, None, voice="nova", speed=2.0)
    await store.close()
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_FALLBACK="none"):
        interaction = await speak(emu, "Hello world.")
        assert (await interaction.wait_message(timeout=30)).attachments
        notice = await interaction.wait_message(timeout=10, index=1)
        assert notice.ephemeral and "'nova' is no longer offered" in notice.content and "2×" in notice.content
        assert (realtime_endpoint.responses[-1].voice, realtime_endpoint.responses[-1].speed) == ("alloy", 1.0)
        again = await speak(emu, "Good morning everyone.")
        assert (await again.wait_message(timeout=30)).attachments
        await asyncio.sleep(0.5)
        assert len(again.messages) == 1  # told once
        assert "from 0.25 to 1.5, not 3" in await ephemeral(emu, "voice set", speed=3.0)


@pytest.mark.parametrize("fmt", ["opus", "wav", "flac", "aac", "pcm"])
async def test_speechbot_say_with_the_realtime_engine(
    tmp_path: Path, realtime_endpoint: RealtimeEndpoint, fmt: str
) -> None:
    env = {"SPEECH_API_BASE_URL": realtime_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "SPEECH_MODEL": REALTIME_MODEL}
    out = tmp_path / f"x.{fmt}"
    code, _, err = await run_cli("say", "please join the voice channel", "--voice", "cedar", "--speed", "0.9",
                                 "-o", str(out), env=env, cwd=tmp_path)
    assert code == 0, err
    assert SPEECH_TEST_KEY not in err and "offline" not in err
    data = out.read_bytes()
    [served] = realtime_endpoint.responses
    assert (served.voice, served.speed) == ("cedar", 0.9)
    if fmt == "pcm":
        assert data == served.pcm
    else:
        assert sniff(data[:12]) is AudioFormat(fmt)
    assert recognize_audio(data, AudioFormat(fmt), PHRASES) == "please join the voice channel"


async def test_speechbot_say_refuses_clearly_and_falls_back_from_a_dead_primary(tmp_path: Path) -> None:
    env = {"SPEECH_API_BASE_URL": dead_url(), "SPEECH_API_KEY": SPEECH_TEST_KEY, "SPEECH_MODEL": REALTIME_MODEL}
    code, _, err = await run_cli("say", "hello", "--speed", "2", env=env, cwd=tmp_path)
    assert code == 1 and err.strip().count("\n") == 0 and "Speed must be between 0.25 and 1.5" in err
    code, _, err = await run_cli("say", "hello", "--voice", "nova", env=env, cwd=tmp_path)
    assert code == 1 and "Unknown voice 'nova'" in err
    code, _, err = await run_cli("say", "hello world", "-o", str(tmp_path / "x.wav"), env=env, cwd=tmp_path)
    assert code == 0, err
    assert "Said by the offline voice instead of alloy, because the speech service is not answering" in err
    assert recognize_audio((tmp_path / "x.wav").read_bytes(), AudioFormat.WAV, PHRASES) == "hello world"
    code, _, err = await run_cli("say", "hello world", env={**env, "SPEECH_FALLBACK": "none"}, cwd=tmp_path)
    assert code == 1 and "Could not reach the speech service." in err


async def test_check_names_the_engine_the_fallback_and_the_shutdowns(
    tmp_path: Path, realtime_endpoint: RealtimeEndpoint
) -> None:
    env = {"SPEECH_API_BASE_URL": realtime_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "SPEECH_MODEL": REALTIME_MODEL, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    _, out, _ = await run_cli("check", env=env, cwd=tmp_path)
    text = out.decode()
    base = realtime_endpoint.base_url
    assert f"[ok ] speech: the Realtime API at {base} (WebSocket), model {REALTIME_MODEL} answers" in text
    assert "speech fallback: the offline engine (local) speaks when" in text and "shuts down" not in text

    _, out, _ = await run_cli("check", env={**env, "SPEECH_MODEL": "gpt-realtime-mini"}, cwd=tmp_path)
    text = out.decode()
    assert "[!! ] speech: the model gpt-realtime-mini shuts down on 2027-01-20" in text
    assert "SPEECH_MODEL=gpt-realtime-2.1-mini" in text

    _, out, _ = await run_cli("check", env={**env, "SPEECH_MODEL": "gpt-realtime-2025-08-28",
                                            "SPEECH_FALLBACK": "none"}, cwd=tmp_path)
    text = out.decode()
    assert "does not serve gpt-realtime-2025-08-28 over the Realtime API" in text
    assert "speech fallback: none" in text

    _, out, _ = await run_cli("check", env={**env, "SPEECH_API_KEY": "sk-wrong-0000"}, cwd=tmp_path)
    assert "speech: the API key was rejected (401)" in out.decode() and "sk-wrong" not in out.decode()
