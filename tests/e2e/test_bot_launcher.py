"""The launcher that forks end-to-end bots from pre-imported modules (``tests/support/bot_launcher.py``) starts
the same bot ``python -m bot`` does: same exit codes, same output, the test's environment and none of the
launcher's, signals delivered to the bot itself."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.loopback.discord import DiscordEmulator
from tests.support.bot_launcher import LaunchedProcess
from tests.support.bot_process import BotProcess


async def ended(process: BotProcess, timeout: float = 60) -> tuple[int, str]:
    assert process.process is not None
    try:
        return await asyncio.wait_for(process.process.wait(), timeout), process.log
    except TimeoutError:
        raise AssertionError(f"the bot did not end within {timeout:.0f} s:\n{process.log}") from None


@pytest.mark.parametrize(
    ("env", "code", "line"),
    [
        ({}, 2, "speechbot: DISCORD_TOKEN is not set."),
        ({"DISCORD_TOKEN": "x.y.z", "SPEECH_TIMEOUT": "soon"}, 2, "speechbot: configuration error: SPEECH_TIMEOUT"),
    ],
)
async def test_forked_and_execd_bots_end_alike(
    env: dict[str, str], code: int, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = []
    for fresh in ("0", "1"):
        monkeypatch.setenv("SPEECHBOT_TESTS_EXEC", fresh)
        process = BotProcess({**env, "DATA_DIR": str(tmp_path)}, tmp_path / f"bot-{fresh}.log")
        await process.start()
        assert isinstance(process.process, LaunchedProcess) is (fresh == "0")
        results.append(await ended(process))
    assert results[0] == results[1]
    assert results[0][0] == code and results[0][1].startswith(line), results[0]


async def test_a_forked_bot_runs_with_the_tests_environment_and_stops_on_sigterm(
    discord_emulator: DiscordEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEECHBOT_TESTS_EXEC", "0")
    data = tmp_path / "data"
    data.mkdir()
    process = BotProcess({**discord_emulator.env(), "DATA_DIR": str(data), "LOG_LEVEL": "DEBUG",
                          "DEV_GUILD_ID": str(discord_emulator.guild.id)}, tmp_path / "bot.log")
    await process.start()
    assert isinstance(process.process, LaunchedProcess)
    await discord_emulator.wait_commands(timeout=30, guild_id=discord_emulator.guild.id)  # it reached the emulator
    assert (data / "speechbot.sqlite3").exists() or any(data.iterdir())  # DATA_DIR from the test, as its cwd
    process.process.send_signal(signal.SIGTERM)
    code, log = await ended(process, 30)
    assert code == 0 and "shutting down (signal)" in log and "stopped" in log
