"""Compatibility: the real bot, the real CLI and real third-party speech servers from PyPI (``real_servers.py``).

Each server runs with piper's joe voice, with and without an ffmpeg on its PATH; the bot has no API key (these
servers need none) and no fallback engine, so what is heard or read comes from the server. Select them with
``-m real_servers``; they are part of the default suite. What each test found is recorded for
``docs/COMPATIBILITY.md`` (``tests/e2e/compat.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.audio.formats import AudioFormat, sniff
from bot.speech.error_parsing import parse_error_body
from tests.e2e import compat
from tests.e2e.real_servers import SERVERS, RunningServer, run_server
from tests.e2e.test_cli_speech import run_cli
from tests.loopback.discord import DiscordEmulator
from tests.support.audio_check import recognize_audio
from tests.support.bot_fixtures import speak
from tests.support.bot_process import running_bot
from tests.support.voice_helpers import current_session, heard_words, join, segments, speak_in_voice

pytestmark = [pytest.mark.real_servers, pytest.mark.timeout(600)]

FILE_FORMATS = ["opus", "wav", "flac", "aac", "pcm"]
#: What every server makes without ffmpeg (both say so in their refusals).
NATIVE_FORMATS = {"wav", "pcm"}
FILE_PHRASES = ["hello world", "thank you for listening", "please join the voice channel"]
PHRASES = ["hello world", "good morning everyone", "open the door", "thank you for listening",
           "please join the voice channel", "alice said open the door", "alice said thank you for listening"]


def server_ids() -> list[tuple[str, bool]]:
    return [(name, ffmpeg) for name in SERVERS for ffmpeg in (False, True)]


@pytest.fixture(scope="module", params=server_ids(), ids=lambda p: f"{p[0]}{'+ffmpeg' if p[1] else ''}")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    name, ffmpeg = request.param
    with run_server(SERVERS[name], tmp_path_factory.mktemp(name), ffmpeg=ffmpeg) as running:
        yield running


def can_make(server: RunningServer, fmt: str) -> bool:
    return server.ffmpeg or fmt in NATIVE_FORMATS


def bot_env(server: RunningServer, **extra: str) -> dict[str, str]:
    """A keyless bot against ``server`` (self-hosted servers need no key), no fallback: what is heard is the
    server's."""
    return {"SPEECH_API_BASE_URL": server.base_url, "SPEECH_BACKEND": "openai", "SPEECH_FALLBACK": "none",
            "SPEECH_TIMEOUT": "30", **extra}


async def test_speak_as_a_file_in_every_format(
    server: RunningServer, discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_bot(emu, tmp_path, **bot_env(server)):
        for fmt in FILE_FORMATS:
            interaction = await speak(emu, text="Hello world.", format=fmt)
            message = await interaction.wait_message(timeout=60)
            if not can_make(server, fmt):
                assert message.ephemeral and not message.attachments, message.content
                assert "ffmpeg" in message.content.lower(), message.content  # the server's own reason
                compat.record(server.id, f"/speak file {fmt}", "refused: needs ffmpeg (the server's reason shown)")
                continue
            assert not message.ephemeral, message.content
            [attachment] = message.attachments
            if fmt != "pcm":
                assert sniff(attachment.data[:12]) is AudioFormat(fmt)
            # candidates of different lengths: "open the door" was once taken for "hello world" in a compressed
            # format on a loaded machine, which says nothing about the server or the bot
            assert recognize_audio(attachment.data, AudioFormat(fmt), FILE_PHRASES) == "hello world"
            compat.record(server.id, f"/speak file {fmt}", "works")


async def test_speak_in_voice_and_read_aloud(
    server: RunningServer, discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    """Voice asks for Opus whatever the file format setting, and takes wav when the server cannot make Opus."""
    emu = discord_emulator
    async with running_bot(emu, tmp_path, **bot_env(server, SPEECH_DEFAULT_FORMAT="flac")) as bot:
        await join(emu)
        session = await current_session(emu)
        interaction = await speak_in_voice(emu, "Good morning everyone.")
        message = await interaction.wait_message(timeout=60)
        assert not message.ephemeral, message.content
        await emu.wait_for(lambda: len(segments(session)) >= 1, timeout=60, what="the /speak item played")
        await session.wait_idle(quiet=1.0, timeout=60)
        assert heard_words(segments(session)[0], PHRASES) == "good morning everyone", bot.log[-3000:]
        asked = "opus" if server.ffmpeg else "opus, refused: wav from then on"
        assert ("cannot make opus" in bot.log) is not server.ffmpeg
        compat.record(server.id, "/speak in voice", f"works (asks {asked})")

        await emu.chat.send(emu.user, emu.voice_channel, "Open the door.")
        await emu.wait_for(lambda: len(segments(session)) >= 2, timeout=60, what="the chat message read")
        await session.wait_idle(quiet=1.0, timeout=60)
        assert heard_words(segments(session)[1], PHRASES) == "alice said open the door"
        assert session.check_stream() == []
        compat.record(server.id, "read-aloud", "works")


@pytest.mark.parametrize("fmt", FILE_FORMATS)
async def test_say_writes_every_format_the_server_makes(server: RunningServer, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    code, _, err = await run_cli("say", "thank you for listening", "-o", str(out), env=bot_env(server), cwd=tmp_path)
    if not can_make(server, fmt):
        assert code == 1 and not out.exists()
        assert err.strip().count("\n") == 0 and "ffmpeg" in err.lower(), err
        compat.record(server.id, f"say {fmt}", "refused: needs ffmpeg (the server's reason shown)")
        return
    assert code == 0, err
    assert recognize_audio(out.read_bytes(), AudioFormat(fmt), PHRASES) == "thank you for listening"
    compat.record(server.id, f"say {fmt}", "works")


async def test_check_synthesizes_and_names_what_to_change(
    server: RunningServer, discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    env = {**discord_emulator.env(), **bot_env(server)}
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    text = out.decode()
    assert "API key" not in text and "Traceback" not in err
    if not server.ffmpeg:  # the default format is opus, which it cannot make: said, with the setting to change
        assert code == 1 and "the service cannot make opus audio" in text and "SPEECH_DEFAULT_FORMAT" in text, text
        compat.record(server.id, "speechbot check (default opus)", "fails: names SPEECH_DEFAULT_FORMAT")
        code, out, err = await run_cli("check", env={**env, "SPEECH_DEFAULT_FORMAT": "wav"}, cwd=tmp_path)
        text = out.decode()
    assert code == 0, text + err
    assert f"{server.base_url}/audio/speech speaks (model gpt-4o-mini-tts, voice alloy" in text
    playback = "opus" if server.ffmpeg else "wav (the service cannot make opus"
    assert f"voice and read-aloud get {playback}" in text
    assert "accepts instructions" in text  # both ignore the field
    assert list(tmp_path.iterdir()) == []
    if server.ffmpeg:
        compat.record(server.id, "speechbot check (default opus)", "passes")
    compat.record(server.id, "speechbot check", "passes" + ("" if server.ffmpeg else " with SPEECH_DEFAULT_FORMAT=wav"))


def wav_seconds_and_rate(data: bytes) -> tuple[float, int]:
    import io
    import wave

    with wave.open(io.BytesIO(data)) as wav:  # these servers write whole wav files with real sizes
        return wav.getnframes() / wav.getframerate(), wav.getframerate()


def test_what_the_server_does(server: RunningServer) -> None:
    """Measured over plain HTTP: the facts the bot's negotiation is built on (and docs/COMPATIBILITY.md shows)."""
    base = {"model": "gpt-4o-mini-tts", "input": "hello world, this is a test", "voice": "alloy"}
    made, refused = [], []
    for fmt in ["mp3", "opus", "aac", "flac", "wav", "pcm"]:
        status, headers, body = server.post_speech({**base, "response_format": fmt})
        if status == 200:
            made.append(fmt)
        else:
            refused.append(f"{fmt} ({status})")
            assert status == 400 and "ffmpeg" in body.decode().lower()  # a 400 whose reason names what is missing
    assert set(made) == (set(FILE_FORMATS) | {"mp3"} if server.ffmpeg else NATIVE_FORMATS)
    compat.fact(server.id, "formats made", ", ".join(made))
    compat.fact(server.id, "formats refused", ", ".join(refused) or "none")

    # Piper's timing varies between syntheses of the same text: by up to ~5 % for a few words (about the gap
    # between 22,050 and 24,000 Hz), under 1 % for four sentences. The pcm's rate is estimated from long ones.
    long = {**base, "input": "The quick brown fox jumps over the lazy dog. " * 4}
    status, headers, wav = server.post_speech({**long, "response_format": "wav"})
    seconds, wav_rate = wav_seconds_and_rate(wav)
    compat.fact(server.id, "wav sample rate", f"{wav_rate} Hz")
    status, headers, pcm = server.post_speech({**long, "response_format": "pcm"})
    lower = {k.lower(): v for k, v in headers.items()}
    estimate = len(pcm) / 2 / seconds
    pcm_rate = min((16000, 22050, 24000, 44100, 48000), key=lambda rate: abs(rate - estimate))
    announced = lower.get("x-sample-rate") or "not announced"
    compat.fact(server.id, "pcm", f"{lower.get('content-type')}, X-Sample-Rate {announced}, {pcm_rate} Hz")
    if server.name == "local-tts-studio":
        assert (lower["x-sample-rate"], pcm_rate) == ("22050", 22050)
    else:
        assert (announced, pcm_rate) == ("not announced", 24000)

    status, headers, body = server.get("/audio/voices")
    is_list = status == 200 and headers.get("Content-Type", headers.get("content-type", "")).startswith(
        "application/json")
    compat.fact(server.id, "GET /v1/audio/voices", "a JSON voice list" if is_list else f"{status}, not a voice list")

    durations = {}
    for speed in (0.25, 0.5, 1.0, 2.0, 4.0):
        status, _, wav = server.post_speech({**base, "response_format": "wav", "speed": speed})
        durations[speed] = wav_seconds_and_rate(wav)[0]
    ratios = {speed: durations[1.0] / durations[speed] for speed in durations}
    honoured = "ignored" if abs(ratios[4.0] - 1) < 0.1 else (
        "clamped to 0.5-2" if abs(ratios[4.0] - ratios[2.0]) < 0.15 and abs(ratios[0.25] - ratios[0.5]) < 0.1
        else "0.25-4")
    compat.fact(server.id, "speed", honoured + " (measured: " + ", ".join(
        f"{s:g}→{r:.2f}x" for s, r in ratios.items()) + ")")

    answers = {}
    for voice in ("alloy", "nova", "zeus"):
        status, _, body = server.post_speech({**base, "response_format": "wav", "voice": voice})
        answers[voice] = f"{status}" + ("" if status == 200 else f" \"{parse_error_body(body).message}\"")
    compat.fact(server.id, "voices alloy / nova / zeus", " / ".join(answers.values()))

    for extra, label in (({"instructions": "Speak calmly."}, "instructions"), ({"foo": 1}, "unknown fields"),
                         ({"model": "no-such-model"}, "unknown model")):
        status, _, body = server.post_speech({**base, "response_format": "wav", **extra})
        compat.fact(server.id, label,
                    "ignored (200)" if status == 200 else f"{status} \"{parse_error_body(body).message}\"")


async def test_a_voice_the_server_lacks_is_named_not_retried(server: RunningServer, tmp_path: Path) -> None:
    """loudness-tts answers a catalogue voice that is not downloaded with a 503: a refusal, not an outage."""
    if server.name != "loudness-tts":
        compat.record(server.id, "a voice it does not list (nova)", "n/a: no list; speaks its one configured voice")
        compat.record(server.id, "a listed voice it lacks", "n/a: speaks its one configured voice whatever is asked")
        pytest.skip("local-tts-studio speaks its one configured voice whatever is asked")
    # It lists its whole catalogue (issue 13 item 1: the bot offers that list): a name outside is refused by the
    # bot itself, before anything is sent
    code, _, err = await run_cli("say", "hello world", "--voice", "nova", "-o", str(tmp_path / "x.wav"),
                                 env={**bot_env(server), "LOG_LEVEL": "INFO"}, cwd=tmp_path)
    assert code == 1 and err.strip().count("\n") == 0, err
    assert "Unknown voice 'nova'. Available voices: alloy, en_US-joe-medium, " in err and "more" in err, err
    compat.record(server.id, "a voice it does not list (nova)", "refused by the bot, the listed voices named")
    # a listed voice it has not downloaded: the server's 503, told at once
    _, _, body = server.get("/audio/voices")
    lacking = next(v["id"] for v in json.loads(body)["data"] if v["id"] != "en_US-joe-medium")
    code, _, err = await run_cli("say", "hello world", "--voice", lacking, "-o", str(tmp_path / "x.wav"),
                                 env={**bot_env(server), "LOG_LEVEL": "INFO"}, cwd=tmp_path)
    assert code == 1 and err.strip().count("\n") == 0, err
    assert f"doesn't know the voice '{lacking}'" in err and "is not downloaded yet" in err, err
    assert "retrying" not in err
    compat.record(server.id, "a listed voice it lacks", "503 'not downloaded': told at once, not retried")


async def test_check_finds_the_voices_and_speeds_the_server_honours(
    server: RunningServer, discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    """Issue 13 item 1: local-tts-studio speaks its one configured voice at its configured speed whatever is asked
    and has no voice list; loudness-tts lists its catalogue and clamps speed into 0.5-2. The bot's measuring
    (SPEECH_PROBE=auto: these are not paid endpoints) finds both, and ``check`` says what to change."""
    env = {**discord_emulator.env(), **bot_env(server), "SPEECH_DEFAULT_FORMAT": "wav"}
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    text = out.decode()
    assert code == 0 and "Traceback" not in err, text + err
    voices = next(line for line in text.splitlines() if "voices offered, from" in line)
    speed = next(line for line in text.splitlines() if "speech: the service" in line and "speed" in line)
    if server.name == "local-tts-studio":
        assert "6 voices offered, from the model's default list" in voices
        assert "the service ignores speed (measured)" in speed
        assert "every voice of the service sounds the same (measured)" in text
    else:
        assert "from the server's list" in voices
        assert "honours speeds from 0.5 to 2 only (measured), not 0.25 to 4" in speed, (
            f"check said:\n{text}{err}\nthe server's log ends:\n{server.log[-3000:]}")
    compat.record(server.id, "voices offered (check)", voices[6:].removeprefix("speech: "))
    compat.record(server.id, "speed (check's measuring)", speed[6:].removeprefix("speech: the service "))
    honoured = "sounds the same" if "sounds the same" in text else (
        "differ" if "voices sound different" in text else "not measured")
    compat.record(server.id, "voices differ (check's measuring)", honoured)
