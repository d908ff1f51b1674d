"""Start the real bot (``python -m bot run``) as a subprocess against the loopback doubles."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.support.bot_launcher import ROOT, LaunchedProcess, forkable, launcher

if TYPE_CHECKING:
    from tests.loopback.discord import DiscordEmulator


def checkout_pythonpath(*first: Path) -> str:
    """``PYTHONPATH`` for a process that must run this checkout's ``bot`` (a git worktree too), whichever checkout
    the venv installed in editable mode: ``first``, then the checkout, then the inherited ``PYTHONPATH``."""
    inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    return os.pathsep.join([*map(str, first), str(ROOT), *inherited])


class BotProcess:
    """A bot process whose combined output goes to a log file that tests can scan."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, args: tuple[str, ...] = ("run",), *, console_script: bool = False
    ) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPEECH_", "DEV_GUILD"))}
        # PYTHONPATH: the bot runs this checkout's code (a git worktree too), whatever the venv installed.
        self.env = {
            **inherited, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", "PYTHONPATH": str(ROOT), **env
        }
        self.log_path = log_path
        self.args = args
        # The installed ``speechbot`` entry point, or ``python -m bot`` (the same code path).
        script = Path(sys.executable).with_name("speechbot")
        self.console_script = console_script
        self.command = [str(script)] if console_script else [sys.executable, "-m", "bot"]
        self.process: asyncio.subprocess.Process | LaunchedProcess | None = None

    async def start(self) -> None:
        self._log_file = self.log_path.open("wb")
        if not self.console_script and forkable(self.env):  # tests.support.bot_launcher
            self.process = await asyncio.to_thread(
                launcher().launch, self.env, self.env.get("DATA_DIR", str(ROOT)), self.args, self.log_path)
            return
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            *self.args,
            env=self.env,
            cwd=self.env.get("DATA_DIR", str(ROOT)),
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait; returns the exit code (kills and fails loudly if it hangs)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError as hung:
                # Where it hangs: SIGUSR1 logs every asyncio task's stack, and with PYTHONFAULTHANDLER=1 SIGABRT
                # prints every thread's stack.
                self.process.send_signal(signal.SIGUSR1)
                await asyncio.sleep(1)
                self.process.send_signal(signal.SIGABRT)
                try:
                    await asyncio.wait_for(self.process.wait(), 5)
                except TimeoutError:
                    self.process.kill()
                    await self.process.wait()
                raise AssertionError(f"the bot did not stop within {timeout:.0f} s of SIGTERM:\n{self.log}") from hung
        self._log_file.close()
        return self.process.returncode

    def assert_alive(self) -> None:
        assert self.process is not None and self.process.returncode is None, f"the bot exited:\n{self.log}"


_OUR_CODE = (str(ROOT / "bot") + "/", str(ROOT / "cogs") + "/")


def log_problems(log: str, secrets: tuple[str, ...]) -> list[str]:
    """What a clean run's log must not contain: a secret, a traceback through our code, a lost task error.

    discord.py logs its own reconnects with a traceback (``Disconnected from voice... Reconnecting``); those
    are expected under fault injection and do not count.
    """
    problems = [f"a secret ({secret[:4]}…) is in the log" for secret in secrets if secret and secret in log]
    if "Task exception was never retrieved" in log or "Unhandled exception" in log:
        problems.append("an asyncio task failed without anyone noticing")
    for block in log.split("Traceback (most recent call last):")[1:]:
        frames = [line for line in block.splitlines() if line.startswith('  File "')]
        if any(any(path in frame for path in _OUR_CODE) for frame in frames):
            problems.append("a traceback through the bot's code:\n" + block[:2000])
    return problems


@asynccontextmanager
async def running_bot(
    emu: DiscordEmulator, data_dir: Path, *, console_script: bool = False, **env: str
) -> AsyncIterator[BotProcess]:
    """The bot as a subprocess, ready and with its commands synced (to ``DEV_GUILD_ID``, by default the
    emulator's guild; ``DEV_GUILD_ID=""``: globally); on the way out it must exit 0 with no traceback and no
    secret in its log. Its log is ``data_dir/bot.log`` (the previous run's is replaced)."""
    dev_guild = env.get("DEV_GUILD_ID", str(emu.guild.id))
    process = BotProcess(
        {
            **emu.env(),
            "DEV_GUILD_ID": dev_guild,
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "DEBUG",
            # The measuring after start sends speech requests of its own, which tests counting requests would see;
            # tests/e2e/test_capabilities.py turns it on.
            "SPEECH_PROBE": "off",
            **env,
        },
        data_dir / "bot.log",
        console_script=console_script,
    )
    known_sessions = set(emu.gateway.sessions)
    await process.start()
    try:
        await emu.wait_for(
            lambda: any(s.ready for key, s in emu.gateway.sessions.items() if key not in known_sessions),
            timeout=30,
            what="READY for this bot process",
        )
        await emu.wait_commands(timeout=30, guild_id=int(dev_guild) if dev_guild else None)
        yield process
    finally:
        code = await process.stop()
        log = process.log
        assert code == 0, log
        assert log_problems(log, (SPEECH_TEST_KEY, emu.env()["DISCORD_TOKEN"])) == [], log
