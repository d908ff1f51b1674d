"""Start-up ends in one line when Discord does not let the bot in: bounded waits, and exit codes a service
manager can act on (2: the operator must change something, so systemd's RestartPreventExitStatus=2 stops the
restart loop; 1: worth trying again)."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loopback.discord import DiscordEmulator
from tests.support.bot_process import BotProcess


async def finished(process: BotProcess, timeout: float) -> int:
    assert process.process is not None
    return await asyncio.wait_for(process.process.wait(), timeout)


async def test_a_rejected_token_exits_2_in_one_line(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    env = {**discord_emulator.env(), "DISCORD_TOKEN": "not-the-emulators-token", "DATA_DIR": str(tmp_path)}
    process = BotProcess(env, tmp_path / "bot.log")
    await process.start()
    assert await finished(process, 30) == 2
    assert "Discord rejected DISCORD_TOKEN" in process.log and "Traceback" not in process.log


async def test_a_discord_api_that_never_answers_ends_start_up_within_the_timeout(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (in the backlog), never answers
    port = silent.getsockname()[1]
    try:
        env = {"DISCORD_TOKEN": "x.y.z", "DATA_DIR": str(tmp_path), "DISCORD_CONNECT_TIMEOUT": "2",
               "DISCORD_API_BASE": f"http://127.0.0.1:{port}/api/v10",
               "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/gateway"}
        process = BotProcess(env, tmp_path / "bot.log")
        await process.start()
        assert await finished(process, 40) == 1
    finally:
        silent.close()
    lines = [line for line in process.log.splitlines() if line.startswith("speechbot:")]
    assert lines == [(f"speechbot: Discord's API at http://127.0.0.1:{port}/api/v10 did not answer within 2 s. "
                     "Check the network (and DISCORD_API_BASE if set); DISCORD_CONNECT_TIMEOUT sets the wait.")]


@pytest.fixture
def silent_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """The gateway that GET /gateway/bot names (as on Discord) accepts connections and never answers."""
    silent = socket.create_server(("127.0.0.1", 0))
    silent.setblocking(False)
    port = silent.getsockname()[1]
    monkeypatch.setattr(DiscordEmulator, "gateway_url", property(lambda _: f"ws://127.0.0.1:{port}/gateway"))
    with silent:
        yield silent


async def test_a_gateway_that_never_answers_ends_start_up_within_the_timeout(
    discord_emulator: DiscordEmulator, tmp_path: Path, silent_gateway: socket.socket
) -> None:
    env = {**discord_emulator.env(), "DATA_DIR": str(tmp_path), "DISCORD_CONNECT_TIMEOUT": "3"}
    process = BotProcess(env, tmp_path / "bot.log")
    await process.start()
    assert await finished(process, 60) == 1
    assert "speechbot: Discord's gateway did not answer within 3 s." in process.log
    assert "Traceback" not in process.log


async def test_a_stop_asked_for_while_the_gateway_does_not_answer_ends_the_bot_at_once(
    discord_emulator: DiscordEmulator, tmp_path: Path, silent_gateway: socket.socket
) -> None:
    """discord.py retries a shard that cannot connect even after the client is closed: a SIGTERM during start-up
    (systemd stopping a bot that is still connecting) must not wait for the connection timeout."""
    env = {**discord_emulator.env(), "DATA_DIR": str(tmp_path), "DISCORD_CONNECT_TIMEOUT": "120"}
    process = BotProcess(env, tmp_path / "bot.log")
    await process.start()
    connection, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_accept(silent_gateway), 60)
    with connection:  # the bot is connecting now
        assert process.process is not None
        process.process.send_signal(signal.SIGTERM)
        assert await finished(process, 20) == 0, process.log
    assert "did not answer" not in process.log and "stopped" in process.log
