"""Start end-to-end bot processes without paying for their imports each time.

``python -m bot run`` spends about 1.3 s of CPU importing discord.py, aiohttp, SQLAlchemy, PyAV and the bot
before it does anything; the end-to-end suite starts some two hundred of them. Each pytest worker therefore keeps
one *launcher*: a process that imports what ``run`` imports, once, then forks a child per bot (and per CLI run of
the tests: ``say``, ``check``, ``stats``). The child sets the test's environment, working directory and output
files, and calls the same ``bot.cli.main`` that ``python -m bot`` calls, so everything the bot does after its
imports is the real process's: its own pid, signals, sockets, output and exit code.

What differs from an exec'd process, and is taken care of: the environment is applied after the imports (the
bot reads it at run time; aiohttp's default TLS context is made at import and is remade when ``SSL_CERT_FILE``
differs), and Python's start-up options (``PYTHONFAULTHANDLER``, unbuffered output) are applied by hand. Tests
that exercise the entry points themselves (the ``speechbot`` script, a different ``PYTHONPATH``, clean venvs, a
terminal) still exec a fresh interpreter (:func:`forkable` decides), and ``SPEECHBOT_TESTS_EXEC=1`` makes every
one a fresh interpreter.

The protocol on the launcher's stdin/stdout is one JSON object per line: ``{"env", "cwd", "args", "stdout",
"stderr"}`` (file paths) in, ``{"pid"}`` back; ``{"exit": pid, "code": returncode}`` when a child ends
(negative: killed by that signal).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


# -- the launcher process ------------------------------------------------------------------------------------


def serve() -> None:
    """The launcher's main loop (``python -c 'from tests.support.bot_launcher import serve; serve()'``)."""
    import importlib

    import bot.app
    import bot.cli
    import bot.services

    for extension in bot.app.EXTENSIONS:
        importlib.import_module(extension)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    pending = b""
    while True:
        try:
            readable, _, _ = select.select([0, wake_read], [], [])
        except InterruptedError:
            continue
        if wake_read in readable:
            os.read(wake_read, 4096)
            _reap()
        if 0 in readable:
            chunk = os.read(0, 65536)
            if not chunk:  # the worker is gone
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                pid = os.fork()
                if pid == 0:
                    _child(json.loads(line), (wake_read, wake_write))
                _write({"pid": pid})


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _write({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _write(message: dict[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _child(request: dict[str, Any], launcher_fds: tuple[int, int]) -> None:
    """In the forked child: become ``python -m bot <args>`` as the worker would have started it; never returns."""
    import atexit as child_atexit
    import faulthandler
    import io
    import traceback

    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in launcher_fds:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(out, fd)
            os.close(out)
        # PYTHONUNBUFFERED=1, as the exec'd process has it
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True,
                                      errors="backslashreplace")
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        launcher_cert = os.environ.get("SSL_CERT_FILE")
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        if os.environ.get("PYTHONFAULTHANDLER"):
            faulthandler.enable()
        if os.environ.get("SSL_CERT_FILE") != launcher_cert:
            _remake_aiohttp_default_tls()
        sys.argv = [str(ROOT / "bot" / "__main__.py"), *request["args"]]
        from bot.cli import main

        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, exit 1
        traceback.print_exc()
        code = 1
    finally:
        child_atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        os._exit(code)


def _remake_aiohttp_default_tls() -> None:
    """aiohttp makes its default TLS contexts when imported, reading ``SSL_CERT_FILE`` then: make them again now
    that the test's is set, as an exec'd process would have them."""
    import aiohttp.connector as connector

    maker = getattr(connector, "_make_ssl_context", None)
    if maker is None:
        return
    for name, verified in (("_SSL_CONTEXT_VERIFIED", True), ("_SSL_CONTEXT_UNVERIFIED", False)):
        if hasattr(connector, name):
            setattr(connector, name, maker(verified))


# -- the worker's side ---------------------------------------------------------------------------------------


def forkable(env: Mapping[str, str]) -> bool:
    """Whether a ``python -m bot`` with ``env`` can come from the launcher: this checkout's code on the path and
    nothing else (a ``sitecustomize`` elsewhere needs a fresh interpreter), unless ``SPEECHBOT_TESTS_EXEC=1``."""
    return env.get("PYTHONPATH") == str(ROOT) and os.environ.get("SPEECHBOT_TESTS_EXEC") != "1"


class LaunchedProcess:
    """A bot forked by the launcher, with the parts of ``asyncio.subprocess.Process`` the tests use."""

    def __init__(self, launcher: Launcher, pid: int) -> None:
        self._launcher = launcher
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self._launcher.exits.get(self.pid)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[int] = loop.create_future()

        def done(code: int) -> None:
            loop.call_soon_threadsafe(lambda: ended.done() or ended.set_result(code))

        self._launcher.on_exit(self.pid, done)
        return await ended


class Launcher:
    """This worker's launcher process (started on first use, ended with the worker)."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        env = {k: v for k, v in env.items() if not k.startswith(("DISCORD_", "SPEECH_"))}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from tests.support.bot_launcher import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env,
        )
        self.exits: dict[int, int] = {}
        self._watchers: dict[int, list[Any]] = {}
        self._started: list[int] = []
        self._lock = threading.Lock()
        self._started_one = threading.Condition(self._lock)
        self._reader = threading.Thread(target=self._read, name="bot-launcher-reader", daemon=True)
        self._reader.start()
        atexit.register(self.close)

    def launch(self, env: Mapping[str, str], cwd: str, args: tuple[str, ...], stdout: Path,
               stderr: Path | None = None) -> LaunchedProcess:
        """Fork ``python -m bot *args``; its output is appended to ``stdout`` and ``stderr`` (the same file when
        ``stderr`` is None)."""
        request = json.dumps({"env": dict(env), "cwd": cwd, "args": list(args), "stdout": str(stdout),
                              "stderr": str(stderr or stdout)})
        with self._lock:
            assert self._process.stdin is not None
            self._process.stdin.write(request.encode() + b"\n")
            self._process.stdin.flush()
            if not self._started_one.wait_for(lambda: self._started or self._process.poll() is not None, 60):
                raise RuntimeError("the bot launcher did not answer within 60 s")
            if not self._started:
                raise RuntimeError(f"the bot launcher exited ({self._process.returncode})")
            return LaunchedProcess(self, self._started.pop(0))

    def on_exit(self, pid: int, callback: Any) -> None:
        with self._lock:
            if pid not in self.exits:
                self._watchers.setdefault(pid, []).append(callback)
                return
        callback(self.exits[pid])

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            with self._lock:
                if "pid" in message:
                    self._started.append(message["pid"])
                    self._started_one.notify_all()
                    continue
                self.exits[message["exit"]] = message["code"]
                watchers = self._watchers.pop(message["exit"], [])
            for callback in watchers:
                try:
                    callback(message["code"])
                except RuntimeError:  # its test's loop is closed already (the test stopped waiting)
                    pass
        with self._lock:
            self._started_one.notify_all()

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()


_launchers: list[Launcher] = []  # this worker's, at most one
_launcher_lock = threading.Lock()


def launcher() -> Launcher:
    """This worker's launcher, started on first use (again if it died)."""
    with _launcher_lock:
        if not _launchers or _launchers[0]._process.poll() is not None:
            _launchers[:] = [Launcher()]
        return _launchers[0]
