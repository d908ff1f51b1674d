"""End to end: the owner's tools for a public instance on the real bot process — a blocked user is never read
and never reaches the speech service (the loopback speech server's request log), the engine kill switch, and
``speechbot stats`` reading the same database and the running bot's metrics."""

from __future__ import annotations

import json
from pathlib import Path

from bot.audio.formats import AudioFormat
from bot.owner_controls import BLOCKED_USER
from bot.owner_only import NOT_OWNER
from bot.speech.failover import ALL_SWITCHED_OFF
from tests.e2e.test_cli_speech import run_cli
from tests.e2e.test_realtime import realtime_bot, speak_file
from tests.loopback.discord import DiscordEmulator
from tests.loopback.realtime_server import RealtimeEndpoint
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.audio_check import recognize_audio
from tests.support.bot_process import running_bot
from tests.support.metrics import free_port


def sent_texts(endpoint: SpeechEndpoint) -> list[str]:
    return [request.json["input"] for request in endpoint.requests]


async def reply_to(emu: DiscordEmulator, command: str, options: dict[str, object], user: object) -> object:
    interaction = await emu.invoke(command, options, user=user, guild=emu.guild,  # type: ignore[arg-type]
                                   channel=emu.text_channel)
    return await interaction.wait_message(timeout=30)


async def test_a_blocked_user_is_never_read_nor_sent_and_the_kill_switch_stops_an_engine(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu, port = discord_emulator, free_port()
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": SPEECH_TEST_KEY,
           "SPEECH_BACKEND": "openai", "SPEECH_FALLBACK": "none", "METRICS_PORT": str(port)}
    async with running_bot(emu, tmp_path, **env) as bot:
        await reply_to(emu, "join", {}, emu.user)

        refused = await reply_to(emu, "owner block user", {"user": emu.other_user}, emu.user)
        assert refused.ephemeral and refused.content == NOT_OWNER  # type: ignore[attr-defined]
        blocked = await reply_to(emu, "owner block user", {"user": emu.user}, emu.owner)
        assert blocked.ephemeral and "Blocked" in blocked.content  # type: ignore[attr-defined]

        await emu.chat.send(emu.user, emu.voice_channel, "Hello world!")
        await emu.wait_for(lambda: "blocked by the bot's owner" in bot.log, timeout=20, what="the message skipped")
        speak = await reply_to(emu, "speak", {"text": "Good morning everyone."}, emu.user)
        assert speak.ephemeral and speak.content == BLOCKED_USER  # type: ignore[attr-defined]
        assert sent_texts(speech_endpoint) == []  # nothing of theirs reached the speech service

        await reply_to(emu, "owner unblock user", {"user": emu.user}, emu.owner)
        await emu.chat.send(emu.user, emu.voice_channel, "Thank you for listening.")
        await emu.wait_for(lambda: len(speech_endpoint.requests) >= 1, timeout=20, what="the message requested")
        assert sent_texts(speech_endpoint) == ["Alice said, Thank you for listening."]
        spoken = await reply_to(emu, "speak", {"text": "Good morning everyone."}, emu.other_user)
        assert not spoken.ephemeral  # type: ignore[attr-defined]

        off = await reply_to(emu, "owner engine disable", {"name": "openai"}, emu.owner)
        assert "No engine is left" in off.content  # type: ignore[attr-defined]
        switched_off = await reply_to(emu, "speak", {"text": "Open the door."}, emu.user)
        assert switched_off.ephemeral and switched_off.content == ALL_SWITCHED_OFF  # type: ignore[attr-defined]
        assert len(speech_endpoint.requests) == 2

        code, out, err = await run_cli("stats", env={}, cwd=tmp_path)  # the same DATA_DIR, METRICS_PORT unset
        assert code == 0, err
        text = out.decode()
        assert "not available: the bot runs without METRICS_PORT" in text
        assert "engines switched off: openai" in text and "blocked: 0 user(s), 0 server(s)" in text

        code, out, err = await run_cli("stats", "--json", env={"METRICS_PORT": str(port)}, cwd=tmp_path)
        assert code == 0, err
        numbers = json.loads(out)
        assert numbers["live"]["servers"] == 1 and numbers["live"]["voice_sessions"] == 1
        assert numbers["live"]["requests"] == {"openai": {"ok": 2, "failed": 0}}
        assert numbers["stored"]["disabled_engines"] == ["openai"]
        # /speak is counted at once; read-aloud's usage goes with the ledger's next batch, which may not be out yet
        said, read = len("Good morning everyone."), len("Alice said, Thank you for listening.")
        assert numbers["stored"]["today"]["characters"] in (said, said + read)
        assert SPEECH_TEST_KEY not in out.decode() + err

        await reply_to(emu, "owner engine enable", {"name": "openai"}, emu.owner)
        spoken = await reply_to(emu, "speak", {"text": "Open the door."}, emu.user)
        assert not spoken.ephemeral  # type: ignore[attr-defined]
        assert sent_texts(speech_endpoint)[-1] == "Open the door."


async def test_stats_without_a_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    code, out, err = await run_cli("stats", env={}, cwd=tmp_path)
    assert code == 1 and out == b""
    assert err.count("\n") == 1 and "no database at" in err and "Traceback" not in err


async def test_switching_the_realtime_engine_off_lets_the_offline_voice_speak_until_it_is_back(
    discord_emulator: DiscordEmulator, realtime_endpoint: RealtimeEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with realtime_bot(emu, realtime_endpoint.base_url, tmp_path, SPEECH_FALLBACK="local"):
        off = await reply_to(emu, "owner engine disable", {"name": "realtime"}, emu.owner)
        assert off.content == "Switched realtime off. local speaks instead."  # type: ignore[attr-defined]
        data, caption = await speak_file(emu, "Hello world.")
        assert "Said by the offline voice instead of alloy, because the bot's owner switched it off for now." \
            in caption
        assert recognize_audio(data, AudioFormat.OPUS, ["hello world", "good morning everyone"]) == "hello world"
        assert realtime_endpoint.responses == []  # the Realtime API was not asked

        await reply_to(emu, "owner engine enable", {"name": "realtime"}, emu.owner)
        data, caption = await speak_file(emu, "Good morning everyone.")
        assert "Said by" not in caption and [r.text for r in realtime_endpoint.responses] == ["Good morning everyone."]
