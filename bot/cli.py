"""The ``speechbot`` command: ``run``, ``say``, ``check``, ``invite``.

The only place with process-level side effects (dotenv, logging, exit codes). Every failure is one line on
stderr and a non-zero exit; tracebacks are for the log at DEBUG, never for the person at the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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

    from bot.config import Settings
    from bot.speech.errors import SpeechError

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
    # One-shot commands print their own one-line result; their logs would only repeat it.
    quiet = command != "run" and settings.log_level != "DEBUG"
    setup_logging("ERROR" if quiet else settings.log_level, secrets)

    if command == "run":
        return asyncio.run(_run(settings, force_sync=args.sync))
    if command == "say":
        return asyncio.run(_say(settings, args))
    if command == "check":
        return asyncio.run(_check(settings))
    return _invite(settings, args.client_id)


async def _run(settings: Settings, *, force_sync: bool) -> int:
    import aiohttp
    import discord

    from bot.app import SpeechBot
    from bot.diagnostics import MESSAGE_CONTENT_HOWTO, message_content_allowed, speech_summary
    from bot.discord_endpoints import apply_endpoint_overrides, tls_context
    from bot.metrics import Metrics
    from bot.services import build_services
    from bot.speech.errors import SpeechUnavailableError
    from bot.speech.factory import endpoint_capabilities, make_engines, make_probe
    from bot.speech.voices import offered_voices
    from bot.storage import StorageError, Store

    if not settings.discord_token:
        raise CLIError("DISCORD_TOKEN is not set. Put your bot token in .env (see .env.example).", EXIT_USAGE)
    apply_endpoint_overrides(settings.discord_api_base, settings.discord_gateway_url)
    try:
        store = await Store.open(settings.database_url)
    except StorageError as exc:
        raise CLIError(str(exc)) from None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context())) as session:
        metrics = Metrics()
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
                                  probe=make_probe(settings, session, capabilities))
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
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _request_close, bot, closing)
        loop.add_signal_handler(signal.SIGUSR1, _log_task_stacks)
        try:
            async with bot:
                await _start_bounded(bot, settings)
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


async def _start_bounded(bot: discord.Client, settings: Settings) -> None:
    """``bot.start``, but a Discord API or gateway that does not answer at start-up ends the run with one line
    after ``DISCORD_CONNECT_TIMEOUT`` instead of waiting forever (once connected, discord.py reconnects as usual)."""
    timeout = settings.discord_connect_timeout
    where = f" at {settings.discord_api_base}" if settings.discord_api_base else ""
    assert settings.discord_token is not None
    try:
        await asyncio.wait_for(bot.login(settings.discord_token.get_secret_value()), timeout)
    except TimeoutError:
        raise CLIError(f"Discord's API{where} did not answer within {timeout:.0f} s. Check the network "
                       "(and DISCORD_API_BASE if set); DISCORD_CONNECT_TIMEOUT sets the wait.") from None

    # discord.py retries a shard that cannot connect forever, closed or not: the first connection is waited for
    # here, and the connection task cancelled if it does not come.
    gateway = asyncio.create_task(bot.connect(reconnect=True), name="gateway")
    first = asyncio.create_task(bot.wait_for("connect"), name="first-gateway-connection")
    done, _ = await asyncio.wait({gateway, first}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    first.cancel()
    if not done:
        gateway.cancel()
        await asyncio.gather(gateway, first, return_exceptions=True)
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


def _request_close(bot: discord.Client, closing: set[asyncio.Task[None]]) -> None:
    log.info("shutting down (signal)")
    task = asyncio.ensure_future(bot.close())
    closing.add(task)
    task.add_done_callback(closing.discard)


def _log_task_stacks() -> None:
    """``kill -USR1 <pid>``: write where every asyncio task is waiting to the log (for a bot that seems stuck)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=8)
        where = " <- ".join(
            f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}" for f in frames
        )
        log.warning("task %s: %s", task.get_name(), where or "not started")


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

    text = sys.stdin.read() if args.text == "-" else args.text
    fmt = args.fmt or _format_from_suffix(args.output) or settings.default_format
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
                audio, served = await speech.read_whole(request, persist=False)
            finally:
                await speech.close()
        except SpeechError as exc:
            raise CLIError(operator_message(exc)) from None
    if args.output == "-":
        sys.stdout.buffer.write(audio.data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    output = Path(args.output or f"speech.{audio.format.extension}")
    _write_atomically(output, audio.data)
    note = (
        "" if audio.format == request.format
        else f" (the service sent {audio.format.value}, not {request.format.value})"
    )
    if audio.format is AudioFormat.PCM:
        note += f" (raw 16-bit mono at {PCM_SAMPLE_RATE} Hz)"
    if said_by := served.note(request.voice):
        note += f" {said_by}"
    print(f"wrote {output} ({audio.format.value}, {len(audio.data)} bytes){note}", file=sys.stderr)
    return EXIT_OK


def operator_message(error: SpeechError) -> str:
    """One line for the operator: what a user would be told, and the server's own reason when that leaves it out."""
    message = error.user_message
    if error.detail and error.detail not in message:
        message += f" The server said: {error.detail}"
    return " ".join(message.split())


def _format_from_suffix(output: str | None) -> str | None:
    if output in (None, "-"):
        return None
    return _SUFFIX_FORMATS.get(Path(output).suffix.lower())


_SUFFIX_FORMATS = {".opus": "opus", ".ogg": "opus", ".wav": "wav", ".flac": "flac", ".aac": "aac", ".pcm": "pcm"}


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


def _invite(settings: Settings, client_id: int | None) -> int:
    from bot.invite import application_id_from_token, invite_url

    if client_id is None and settings.discord_token:
        client_id = application_id_from_token(settings.discord_token.get_secret_value())
    if client_id is None:
        raise CLIError("cannot tell the application id: set DISCORD_TOKEN or pass --client-id.", EXIT_USAGE)
    print(invite_url(client_id))
    return EXIT_OK
