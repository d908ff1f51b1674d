"""The ``speechbot`` command: ``run``, ``say``, ``check``, ``stats``, ``invite``.

The only place with process-level side effects (dotenv, logging, exit codes). Every failure is one line on
stderr and a non-zero exit; tracebacks are for the log at DEBUG, never for the person at the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dotenv import find_dotenv, load_dotenv

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

if TYPE_CHECKING:
    import discord

    from bot.audio.formats import AudioFormat
    from bot.config import Settings
    from bot.speech.errors import SpeechError
    from bot.speech.failover import FailoverSpeech, Served
    from bot.speech.models import SpeechRequest, SpeechStream, SynthesizedAudio
    from bot.stats import LiveStats

log = logging.getLogger("bot.cli")


class CLIError(Exception):
    """A one-line message for stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechbot", description="A Discord text-to-speech bot.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the bot (the default)")
    run.add_argument("--sync", action="store_true", help="sync slash commands even if they did not change")

    say = sub.add_parser("say", help="synthesize text to an audio file")
    say.add_argument("text", help="the text to say ('-' reads standard input)")
    say.add_argument("--voice", help="voice name (default: SPEECH_DEFAULT_VOICE)")
    say.add_argument("--format", dest="fmt", help="opus, wav, flac, aac or pcm (default: from -o, else opus)")
    say.add_argument("--speed", type=float, default=1.0, help="0.25 to 4.0 (default 1.0)")
    say.add_argument("--instructions", help="style instructions, for models that support them")
    say.add_argument("-o", "--output", help="output file ('-' = standard output; default speech.<format>)")

    sub.add_parser("check", help="diagnose the configuration and say what to fix")

    stats = sub.add_parser("stats", help="one screen for the owner: servers, voice, requests, cache, errors, budgets")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    stats.add_argument("--metrics-url", help="the running bot's /metrics (default: from METRICS_PORT when it is set)")

    invite = sub.add_parser("invite", help="print the URL that adds the bot to a server")
    invite.add_argument("--client-id", type=int, help="application id (default: read from DISCORD_TOKEN)")
    parser.set_defaults(command="run", sync=False)  # bare ``speechbot`` and ``python -m bot`` run the bot
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # .env must be loaded before aiohttp is imported so that SSL_CERT_FILE from it is honoured.
    load_dotenv(find_dotenv(usecwd=True), override=False)
    try:
        return _dispatch(args)
    except CLIError as exc:
        print(f"speechbot: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback at the terminal; the log (LOG_LEVEL=DEBUG) has the details
        log.debug("unexpected error", exc_info=True)
        print(f"speechbot: unexpected error ({type(exc).__name__}); run with LOG_LEVEL=DEBUG for details",
              file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_settings
    from bot.log import setup_logging

    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        raise CLIError("configuration error: " + " ".join(exc.problems), EXIT_USAGE) from None
    secrets = [s.get_secret_value() for s in (settings.discord_token, settings.speech_api_key) if s]
    command = args.command
    # One-shot commands print their own one-line result (with the server's reason); their logs, errors included,
    # would only repeat it on a second line. LOG_LEVEL=DEBUG shows them.
    quiet = command != "run" and settings.log_level != "DEBUG"
    setup_logging("CRITICAL" if quiet else settings.log_level, secrets)

    if command == "run":
        return asyncio.run(_run(settings, force_sync=args.sync))
    if command == "say":
        return asyncio.run(_say(settings, args))
    if command == "check":
        return asyncio.run(_check(settings))
    if command == "stats":
        return asyncio.run(_stats(settings, args))
    return _invite(settings, args.client_id)


async def _run(settings: Settings, *, force_sync: bool) -> int:
    import aiohttp
    import discord

    from bot.app import SpeechBot
    from bot.config import local_voice_problems
    from bot.diagnostics import MESSAGE_CONTENT_HOWTO, message_content_allowed, speech_summary
    from bot.discord_endpoints import apply_endpoint_overrides, tls_context
    from bot.metrics import Metrics
    from bot.services import build_services
    from bot.speech.errors import SpeechUnavailableError
    from bot.speech.factory import endpoint_capabilities, make_engines, make_probe, make_voice_refresher
    from bot.speech.voices import offered_voices
    from bot.storage import StorageError, Store

    if not settings.discord_token:
        raise CLIError("DISCORD_TOKEN is not set. Put your bot token in .env (see .env.example).", EXIT_USAGE)
    if missing := local_voice_problems(settings):
        raise CLIError(" ".join(missing), EXIT_USAGE)
    apply_endpoint_overrides(settings.discord_api_base, settings.discord_gateway_url)
    try:
        store = await Store.open(settings.database_url)
    except StorageError as exc:
        raise CLIError(str(exc)) from None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context())) as session:
        metrics = Metrics()
        configured = settings
        settings, offer = await offered_voices(settings, session)
        for warning in offer.warnings:
            log.warning("%s", warning)
        log.info("voices: %d offered, from %s", len(offer.voices), offer.source)
        capabilities = endpoint_capabilities(settings, offer.source)
        try:
            engines = make_engines(settings, session, observer=metrics, capabilities=capabilities)
        except SpeechUnavailableError as exc:
            await store.close()
            raise CLIError(exc.user_message) from None
        services = build_services(settings, store, engines, metrics=metrics, capabilities=capabilities,
                                  probe=make_probe(settings, session, capabilities),
                                  voice_refresher=make_voice_refresher(configured, settings, session, capabilities))
        for level, line in speech_summary(settings, [engine.name for engine in engines]):
            log.log(level, "%s", line)
        # Without the privileged intent switched on in the portal Discord would refuse the login: run with
        # read-aloud off instead, and say how to turn it on.
        message_content = await message_content_allowed(settings, session) is not False
        if not message_content:
            log.warning("the Message Content intent is off, so read-aloud is off. To turn it on: %s",
                        MESSAGE_CONTENT_HOWTO)
        bot = SpeechBot(
            services,
            connector=aiohttp.TCPConnector(ssl=tls_context(), limit=0),  # one socket per voice channel
            force_sync=force_sync,
            message_content=message_content,
        )
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()  # the close task, referenced until it is done
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _request_close, bot, closing, stopping)
        loop.add_signal_handler(signal.SIGUSR1, _log_task_stacks)
        try:
            async with bot:
                await _start_bounded(bot, settings, stopping)
        except discord.LoginFailure:
            raise CLIError("Discord rejected DISCORD_TOKEN. Reset the token in the developer portal.",
                           EXIT_USAGE) from None
        except discord.PrivilegedIntentsRequired:
            raise CLIError(f"Discord refused a privileged intent. Turn it on: {MESSAGE_CONTENT_HOWTO}",
                           EXIT_USAGE) from None
        except discord.ConnectionClosed as exc:
            message = _GATEWAY_REFUSALS.get(exc.code, f"Discord closed the gateway (code {exc.code}).")
            raise CLIError(message, EXIT_USAGE if exc.code in _GATEWAY_REFUSALS else EXIT_FAILURE) from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise CLIError(f"Could not connect to Discord: {type(exc).__name__}.") from None
        finally:
            await services.close()
    log.info("stopped")
    return EXIT_OK


async def _start_bounded(bot: discord.Client, settings: Settings, stopping: asyncio.Event) -> None:
    """``bot.start``, but a Discord API or gateway that does not answer at start-up ends the run with one line
    after ``DISCORD_CONNECT_TIMEOUT`` instead of waiting forever (once connected, discord.py reconnects as usual),
    and a stop asked for (``stopping``) before the first connection ends it at once."""
    timeout = settings.discord_connect_timeout
    where = f" at {settings.discord_api_base}" if settings.discord_api_base else ""
    assert settings.discord_token is not None
    try:
        async with asyncio.timeout(timeout):
            await bot.login(settings.discord_token.get_secret_value())
    except TimeoutError:
        raise CLIError(f"Discord's API{where} did not answer within {timeout:.0f} s. Check the network "
                       "(and DISCORD_API_BASE if set); DISCORD_CONNECT_TIMEOUT sets the wait.") from None

    # discord.py retries a shard that cannot connect forever, closed or not: the first connection is waited for
    # here, and the connection task cancelled if it does not come.
    gateway = asyncio.create_task(bot.connect(reconnect=True), name="gateway")
    first = asyncio.create_task(bot.wait_for("connect"), name="first-gateway-connection")
    stop = asyncio.create_task(stopping.wait(), name="stop-before-connected")
    done, _ = await asyncio.wait({gateway, first, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    first.cancel()
    stop.cancel()
    if first not in done and gateway not in done:
        gateway.cancel()
        await asyncio.gather(gateway, first, return_exceptions=True)
        if stop in done:  # a SIGTERM during start-up: discord.py would go on retrying with its session closed
            return
        raise CLIError(f"Discord's gateway did not answer within {timeout:.0f} s. Check the network (and "
                       "DISCORD_GATEWAY_URL if set); DISCORD_CONNECT_TIMEOUT sets the wait.")
    await asyncio.gather(first, return_exceptions=True)
    await gateway  # until the bot closes; raises what ended the connection


#: Gateway close codes after which discord.py gives up, and what to change.
_GATEWAY_REFUSALS = {
    4010: "Discord refused a shard (close code 4010): every process needs the same SHARD_COUNT, each shard may "
    "run in one process only, and SHARD_IDS must be below SHARD_COUNT.",
    4011: "Discord requires more shards for this many servers (close code 4011): raise SHARD_COUNT on every "
    "process, or leave it empty to let Discord decide.",
}


def _request_close(bot: discord.Client, closing: set[asyncio.Task[None]], stopping: asyncio.Event) -> None:
    log.info("shutting down (signal)")
    stopping.set()
    task = asyncio.ensure_future(bot.close())
    closing.add(task)
    task.add_done_callback(closing.discard)


def _log_task_stacks() -> None:
    """``kill -USR1 <pid>``: write where every asyncio task is waiting to the log (for a bot that seems stuck)."""
    for task in asyncio.all_tasks():
        log.warning("task %s: %s", task.get_name(), " -> ".join(_awaiting(task.get_coro())) or "not started")


def _awaiting(awaitable: object) -> list[str]:
    """The chain of coroutines a task is suspended in, outermost first (``Task.get_stack`` shows only the first)."""
    chain: list[str] = []
    while awaitable is not None and len(chain) < 40:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return chain


async def _say(settings: Settings, args: argparse.Namespace) -> int:
    import aiohttp

    from bot.audio.formats import PCM_SAMPLE_RATE, AudioFormat
    from bot.discord_endpoints import tls_context
    from bot.speech.cache import AudioCache
    from bot.speech.errors import SpeechError
    from bot.speech.factory import make_engines
    from bot.speech.failover import FailoverSpeech
    from bot.speech.models import SpeechRequest, validate_request
    from bot.speech.voices import offered_voices

    fmt = _output_format(args.output, args.fmt, settings.default_format)
    text = sys.stdin.read() if args.text == "-" else args.text
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context())) as session:
        settings, _ = await offered_voices(settings, session)  # the server's own voices, where it lists them
        try:
            request = validate_request(
                SpeechRequest(
                    text=text,
                    voice=args.voice or settings.default_voice,
                    format=cast(AudioFormat, fmt),  # a name from the command line: validate_request checks it
                    speed=args.speed,
                    instructions=args.instructions,
                ),
                settings.speech_voices,
                speeds=settings.speed_range,
            )
            engines = make_engines(settings, session)
            # The bot's failover, without its cache (nothing kept) and without warm sessions (one request).
            speech = FailoverSpeech(AudioCache(engines[0].backend, namespace=engines[0].namespace, memory_bytes=0),
                                    engines)
            try:
                audio, served = await _read_with_progress(speech, request)
            finally:
                await speech.close()
        except SpeechError as exc:
            raise CLIError(operator_message(exc)) from None
    data, note = audio.data, ""
    if audio.format != request.format:  # a server that sends wav whatever was asked: the file is what its name says
        data = _converted(audio.data, audio.format, request.format)
        note = f" (converted from the service's {audio.format.value})"
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    output = Path(args.output or f"speech.{request.format.extension}")
    _write_atomically(output, data)
    if request.format is AudioFormat.PCM:
        note += f" (raw 16-bit mono at {PCM_SAMPLE_RATE} Hz)"
    if said_by := served.note(request.voice):
        note += f" {said_by}"
    print(f"wrote {output} ({request.format.value}, {len(data)} bytes){note}", file=sys.stderr)
    return EXIT_OK


async def _read_with_progress(speech: FailoverSpeech, request: SpeechRequest) -> tuple[SynthesizedAudio, Served]:
    """The whole file, with a progress line on stderr while it comes when stderr is a terminal."""
    from bot.progress import CountedStream, TerminalProgress
    from bot.speech.models import read_whole

    progress = TerminalProgress.if_terminal(sys.stderr, f"synthesizing {len(request.text):,} characters")
    if progress is None:
        return await speech.read_whole(request, persist=False)
    served: list[Served] = []

    async def open_stream() -> SpeechStream:  # as FailoverSpeech.read_whole, with every chunk counted
        served.append(await speech.open_tracked(request, persist=False))
        return CountedStream(served[-1].stream, progress.received)

    async with progress:
        audio = await read_whole(open_stream)
    return audio, served[-1]


def operator_message(error: SpeechError) -> str:
    """One line for the operator: what a user would be told, and the server's own reason when that leaves it out.
    On the command line the operator is the bot owner: "Ask the bot owner to check X" becomes "Check X"."""
    message = _ASK_THE_OWNER.sub(r"Check \1", error.user_message)
    if error.detail and error.detail not in message:
        message += f" The server said: {error.detail}"
    return " ".join(message.split())


_ASK_THE_OWNER = re.compile(r"Ask the bot owner to check (\w+)")


def _output_format(output: str | None, asked: str | None, default: str) -> str:
    """The format to write: ``--format``, else the one the ``-o`` file name says, else the default. A file name
    that says another audio format than ``--format``, or one the bot cannot make, is refused (exit 2) rather than
    written with content its name does not describe."""
    suffix = "" if output in (None, "-") else Path(output).suffix.lower()
    named = _SUFFIX_FORMATS.get(suffix)
    if named is None and suffix in _OTHER_AUDIO_SUFFIXES:
        raise CLIError(f"cannot write {suffix} files: name the output .opus, .ogg, .wav, .flac, .aac or .pcm.",
                       EXIT_USAGE)
    if asked and named and asked.lower() != named:
        name = Path(output or "")
        raise CLIError(f"-o {name.name} is a name for {named} audio but --format is {asked}: drop --format, or name "
                       f"the file {name.stem}.{asked.lower()}.", EXIT_USAGE)
    return asked or named or default


_SUFFIX_FORMATS = {
    ".opus": "opus", ".ogg": "opus", ".oga": "opus", ".wav": "wav", ".flac": "flac", ".aac": "aac", ".pcm": "pcm",
}
#: Audio file names the bot cannot write (their format is not one a speech request can ask for).
_OTHER_AUDIO_SUFFIXES = {".mp3", ".m4a", ".mp4", ".webm", ".wma", ".aif", ".aiff", ".mka"}


def _converted(data: bytes, served: AudioFormat, wanted: AudioFormat) -> bytes:
    from bot.audio.decode import AudioDecodeError
    from bot.audio.transcode import transcode

    try:
        return transcode(data, served, wanted)
    except AudioDecodeError:
        raise CLIError(f"the speech service sent {served.value} audio that could not be converted to "
                       f"{wanted.value}; ask for --format {served.value}.") from None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file and rename, so a failure never leaves a truncated file behind."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CLIError(f"cannot write {path}: {exc.strerror}") from None


async def _check(settings: Settings) -> int:
    import aiohttp

    from bot.diagnostics import run_checks
    from bot.discord_endpoints import tls_context

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context())) as session:
        findings = await run_checks(settings, session)
    for finding in findings:
        mark = "!! " if finding.warning else "ok " if finding.ok else "FIX"
        print(f"[{mark}] {finding.what}" + (f"\n      {finding.detail}" if finding.detail else ""))
    problems = sum(not f.ok for f in findings)
    warnings = sum(f.warning for f in findings)
    also = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    print(f"{problems} problem(s) found{also}." if problems else f"Everything looks ready{also}.")
    return EXIT_FAILURE if problems else EXIT_OK


async def _stats(settings: Settings, args: argparse.Namespace) -> int:
    """The database's numbers always; the live ones from the bot's metrics endpoint when it answers. Reads only."""
    import json
    from datetime import UTC, datetime

    from bot.stats import as_json, render, stored_stats
    from bot.storage import StorageError, Store
    from bot.storage.engine import create_engine
    from bot.storage.migrations import MIGRATIONS

    if missing := await asyncio.to_thread(_missing_sqlite_file, settings.database_url):
        raise CLIError(f"no database at {missing} yet: the bot has not run with this DATABASE_URL.")
    try:
        store = Store(create_engine(settings.database_url))
    except StorageError as exc:
        raise CLIError(str(exc)) from None
    try:
        version = await store.schema_version()
        if version != len(MIGRATIONS):
            raise CLIError(f"the database is at schema {version}, this speechbot knows {len(MIGRATIONS)}: "
                           "run this version of the bot once (it migrates on start), or upgrade speechbot.")
        stored = await stored_stats(store, datetime.now(UTC).date())
    except StorageError as exc:
        raise CLIError(str(exc)) from None
    finally:
        await store.close()
    live, source = await _live_stats(settings, args.metrics_url)
    if args.json:
        print(json.dumps(as_json(live, stored, live_source=source), indent=2))
    else:
        print("\n".join(render(live, stored, live_source=source)))
    return EXIT_OK


def _missing_sqlite_file(database_url: str) -> str | None:
    """The SQLite file ``database_url`` names when it does not exist (opening it would create it)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.drivername.startswith("sqlite") and url.database and not Path(url.database).expanduser().exists():
        return url.database
    return None


async def _live_stats(settings: Settings, metrics_url: str | None) -> tuple[LiveStats | None, str]:
    """The bot's live numbers and where they came from, or None and why not."""
    import aiohttp

    from bot.stats import live_stats

    if metrics_url is None:
        if settings.metrics_port is None:
            return None, "not available: the bot runs without METRICS_PORT (or pass --metrics-url)"
        host = "127.0.0.1" if settings.metrics_host in ("0.0.0.0", "::", "") else settings.metrics_host
        metrics_url = f"http://{host}:{settings.metrics_port}/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                session.get(metrics_url) as response:
            response.raise_for_status()
            text = await response.text()
        return live_stats(text), f"the running bot's metrics at {metrics_url}, since it started"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        why = type(exc).__name__ if not str(exc) else " ".join(str(exc).split())[:120]
        return None, f"not available: {metrics_url} did not answer ({why}); is the bot running?"


def _invite(settings: Settings, client_id: int | None) -> int:
    from bot.invite import application_id_from_token, invite_url

    if client_id is None and settings.discord_token:
        client_id = application_id_from_token(settings.discord_token.get_secret_value())
        if client_id is None:
            raise CLIError("DISCORD_TOKEN is malformed: a bot token starts with the bot's id in base64. Copy it "
                           "again from the developer portal (Bot, Reset Token), or pass --client-id.", EXIT_USAGE)
    if client_id is None:
        raise CLIError("cannot tell the application id: set DISCORD_TOKEN or pass --client-id.", EXIT_USAGE)
    print(invite_url(client_id))
    return EXIT_OK
