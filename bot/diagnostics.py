"""``speechbot check``: find what a new operator got wrong, and say what to do about it."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bot import __version__
from bot.audio.formats import AudioFormat
from bot.config import Settings
from bot.speech.catalog import OPENAI_BASE_URL, RECOMMENDED_REALTIME_MODEL, shutdown_date

if TYPE_CHECKING:
    from bot.speech.capabilities import EndpointCapabilities
    from bot.speech.errors import SpeechError
    from bot.speech.models import SpeechRequest

_TIMEOUT = aiohttp.ClientTimeout(total=10)
DISCORD_API_BASE = "https://discord.com/api/v10"
#: Discord asks bots to identify themselves this way; discord.py sends the same shape.
_USER_AGENT = f"DiscordBot (https://github.com/speechbot/speechbot, {__version__})"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of ``speechbot check``; a ``warning`` is ok for now but needs doing (not counted as a problem)."""

    ok: bool
    what: str
    detail: str = ""
    warning: bool = False


async def run_checks(settings: Settings, session: aiohttp.ClientSession) -> list[Finding]:
    findings = [check_token_present(settings), check_data_dir(settings), check_cache_dir(settings),
                check_voice_support()]
    if (cert := check_ssl_cert_file()) is not None:
        findings.append(cert)
    findings.append(await check_database(settings))
    if (switched_off := await check_engines_switched_off(settings)) is not None:
        findings.append(switched_off)
    findings.extend(await check_speech(settings, session))
    if (shutdown := check_model_shutdown(settings)) is not None:
        findings.append(shutdown)
    findings.append(check_fallback(settings))
    findings.extend(check_local_voices(settings))
    if settings.discord_token:
        findings.append(await check_discord_token(settings, session))
        if findings[-1].ok:
            findings.append(await check_message_content_intent(settings, session))
    return findings


def check_token_present(settings: Settings) -> Finding:
    if settings.discord_token:
        return Finding(True, "DISCORD_TOKEN is set")
    return Finding(
        False,
        "DISCORD_TOKEN is not set",
        "Create a bot at https://discord.com/developers/applications (Bot → Reset Token) and put it in .env.",
    )


def _not_writable(path: Path) -> str | None:
    """Why files could not be written in ``path``, or None; nothing is created or written (``check`` only looks:
    a missing directory counts when its nearest existing parent would let ``run`` create it)."""
    path = path.expanduser()
    if path.exists():
        if not path.is_dir():
            return "Not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "Permission denied"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return "Not a directory"
    return None if os.access(parent, os.W_OK | os.X_OK) else "Permission denied"


def check_data_dir(settings: Settings) -> Finding:
    path = settings.data_dir
    if why := _not_writable(path):
        return Finding(False, f"data directory {path} is not writable", f"{why}. Set DATA_DIR.")
    return Finding(True, f"data directory {path} is writable")


def check_cache_dir(settings: Settings) -> Finding:
    path = settings.audio_cache_dir
    if settings.cache_disk_bytes == 0:
        return Finding(True, "audio cache: memory only (CACHE_DISK_MB=0)")
    if why := _not_writable(path):
        return Finding(
            False,
            f"audio cache directory {path} is not writable",
            f"{why}. Set CACHE_DIR, or CACHE_DISK_MB=0 to cache in memory only.",
        )
    return Finding(True, f"audio cache directory {path} is writable")


async def check_database(settings: Settings) -> Finding:
    """Read the schema version without changing anything (``run`` applies migrations; ``check`` only looks)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from bot.storage.migrations import MIGRATIONS

    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return Finding(False, "database: cannot be opened", "DATABASE_URL must start with sqlite:/// or postgresql://.")
    try:
        if url.drivername.startswith("sqlite"):
            if not url.database or url.database == ":memory:":
                return Finding(False, "database: cannot be opened", "DATABASE_URL needs a file for SQLite.")
            path = Path(url.database).expanduser()  # noqa: ASYNC240 - string work, no I/O
            if not await asyncio.to_thread(path.exists):
                if why := _not_writable(path.parent):
                    return Finding(False, f"database: {path} cannot be created", f"{why}. Check DATABASE_URL.")
                return Finding(True, f"database: {path} does not exist yet (the first start creates it)")
            version = await asyncio.to_thread(_sqlite_version, path)
        elif url.drivername.startswith(("postgresql", "postgres")):
            version = await _postgres_version(settings.database_url)
        else:
            return Finding(False, "database: cannot be opened", "DATABASE_URL must start with sqlite:/// or postgresql://.")
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the operator gets one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Finding(False, "database: cannot be opened", f"{reason}. Check DATABASE_URL.")
    latest = len(MIGRATIONS)
    if version > latest:
        return Finding(False, f"database: made by a newer speechbot (schema {version}, this one knows {latest})",
                       "Upgrade speechbot, or point DATABASE_URL at another database.")
    if version < latest:
        return Finding(True, f"database: reachable; the next start applies {latest - version} migration(s)")
    return Finding(True, "database: reachable and up to date")


def _sqlite_version(path: Path) -> int:
    import sqlite3

    # Read-only; with no write-ahead log beside it (no bot running), immutable too, so that SQLite does not create
    # one (a WAL database opened read-only otherwise gets its -wal and -shm files).
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            return 0
        return int(db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


async def _postgres_version(database_url: str) -> int:
    from sqlalchemy import text

    from bot.storage.engine import create_engine

    engine = create_engine(database_url)
    try:
        async with asyncio.timeout(_TIMEOUT.total or 10), engine.connect() as conn:
            exists = (await conn.execute(text("SELECT to_regclass('schema_version')"))).scalar()
            if exists is None:
                return 0
            return int((await conn.execute(text("SELECT coalesce(max(version), 0) FROM schema_version"))).scalar_one())
    finally:
        await engine.dispose()


async def check_engines_switched_off(settings: Settings) -> Finding | None:
    """A warning naming the engines the owner switched off with ``/owner engine disable`` (read-only; None when
    there are none, or the database cannot say: ``check_database`` reports that)."""
    from sqlalchemy.engine import make_url

    from bot.storage.migrations import MIGRATIONS

    try:
        url = make_url(settings.database_url)
        if url.drivername.startswith("sqlite"):
            path = Path(url.database or "").expanduser()  # noqa: ASYNC240 - string work, no I/O
            if not url.database or not await asyncio.to_thread(path.exists):
                return None
            if await asyncio.to_thread(_sqlite_version, path) != len(MIGRATIONS):
                return None
            names = await asyncio.to_thread(_sqlite_disabled_engines, path)
        else:
            if await _postgres_version(settings.database_url) != len(MIGRATIONS):
                return None
            names = await _postgres_disabled_engines(settings.database_url)
    except Exception:  # noqa: BLE001 - the database finding already says what is wrong with it
        return None
    if not names:
        return None
    return Finding(True, "engines switched off by the owner: " + ", ".join(names),
                   "The speech service skips them. Switch one back on with /owner engine enable.", warning=True)


def _sqlite_disabled_engines(path: Path) -> list[str]:
    import sqlite3

    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        return [row[0] for row in db.execute("SELECT engine FROM disabled_engines ORDER BY engine")]


async def _postgres_disabled_engines(database_url: str) -> list[str]:
    from sqlalchemy import text

    from bot.storage.engine import create_engine

    engine = create_engine(database_url)
    try:
        async with asyncio.timeout(_TIMEOUT.total or 10), engine.connect() as conn:
            return list((await conn.execute(text("SELECT engine FROM disabled_engines ORDER BY engine"))).scalars())
    finally:
        await engine.dispose()


def check_voice_support() -> Finding:
    missing = [name for name in ("nacl", "davey") if importlib.util.find_spec(name) is None]
    if missing:
        return Finding(
            False,
            "voice support is missing (" + ", ".join("PyNaCl" if m == "nacl" else m for m in missing) + ")",
            'Reinstall with: pip install "discord.py[voice]==2.7.1"',
        )
    return Finding(True, "voice support (PyNaCl, davey) is installed")


def engine_description(settings: Settings) -> str:
    """The primary engine and its model, in a few words."""
    if settings.uses_local_engine:
        return "the offline engine (piper, en_US-joe-medium)"
    if settings.uses_realtime_engine:
        return f"the Realtime API at {settings.speech_api_base_url} (WebSocket), model {settings.speech_model}"
    return f"{settings.speech_api_base_url}/audio/speech, model {settings.speech_model}"


def move_to_realtime() -> str:
    """What to set to move a bot to the Realtime API."""
    return (
        f"To move to the Realtime API, set SPEECH_MODEL={RECOMMENDED_REALTIME_MODEL} and SPEECH_API_BASE_URL="
        f"{OPENAI_BASE_URL} (or your provider's URL, if it serves the Realtime API)."
    )


def check_model_shutdown(settings: Settings, today: date | None = None) -> Finding | None:
    """A warning (a problem once the day has passed) when OpenAI shuts the configured model down."""
    if settings.uses_local_engine or (when := shutdown_date(settings.speech_model)) is None:
        return None
    today = today or datetime.now(UTC).date()
    passed = today >= when
    what = f"speech: the model {settings.speech_model} {'was shut down' if passed else 'shuts down'} on {when:%Y-%m-%d}"
    if settings.uses_realtime_engine:
        advice = f"Set SPEECH_MODEL={RECOMMENDED_REALTIME_MODEL}, OpenAI's replacement."
    else:
        advice = move_to_realtime()
    return Finding(passed is False, what, advice, warning=not passed)


def fallback_description(names: Sequence[str]) -> str:
    if not names:
        return "none: when the speech service fails, speech fails (SPEECH_FALLBACK=local speaks offline instead)"
    return (
        " then ".join("the offline engine (local)" if name == "local" else name for name in names)
        + " speaks when the speech service is down, out of credit or its model is gone"
    )


def check_fallback(settings: Settings) -> Finding:
    from bot.config import Fallback
    from bot.speech.factory import fallback_names
    from bot.speech.local import INSTALL_HINT, LocalSpeechEngine

    if settings.uses_local_engine:
        return Finding(True, "speech fallback: not needed (the primary engine is the offline one)")
    if settings.speech_fallback and Fallback.LOCAL in settings.speech_fallback and not LocalSpeechEngine.is_installed():
        return Finding(False, "speech fallback: SPEECH_FALLBACK=local, but the offline engine is not installed",
                       f"Install it with: {INSTALL_HINT}, or set SPEECH_FALLBACK=none.")
    return Finding(True, f"speech fallback: {fallback_description([name.value for name in fallback_names(settings)])}")


def check_local_voices(settings: Settings) -> list[Finding]:
    """Each ``LOCAL_VOICES`` model is there with its config (nothing configured: no line)."""
    from bot.config import local_voice_problems

    if not settings.local_voices:
        return []
    problems = local_voice_problems(settings)
    fix = "Download the piper voice (.onnx and .onnx.json) there, or change LOCAL_VOICES."
    if problems:
        return [Finding(False, problem.removesuffix("."), fix) for problem in problems]
    languages = ", ".join(language for language, _ in settings.local_voices)
    return [Finding(True, f"offline voices per language: {languages}")]


def speech_summary(settings: Settings, engines: Sequence[str]) -> list[tuple[int, str]]:
    """What ``speechbot run`` logs at start, with log levels: the engine, its model's shutdown (a WARNING), the
    fallback."""
    lines = [(logging.INFO, f"speech: {engine_description(settings)}")]
    if (shutdown := check_model_shutdown(settings)) is not None:
        lines.append((logging.WARNING, f"{shutdown.what}. {shutdown.detail}"))
    lines.append((logging.INFO, f"speech fallback: {fallback_description(engines[1:])}"))
    return lines


async def check_speech(settings: Settings, session: aiohttp.ClientSession) -> list[Finding]:
    if settings.uses_realtime_engine:
        return [await check_realtime(settings, session)]
    if settings.uses_local_engine:
        from bot.speech.local import INSTALL_HINT, LocalSpeechEngine

        if LocalSpeechEngine.is_installed():
            return [Finding(True, "speech: offline engine (piper) is installed")]
        return [Finding(
            False,
            "speech: no API key and the offline engine is not installed",
            f"Install it with: {INSTALL_HINT}, or set SPEECH_API_KEY.",
        )]
    return await check_speech_api(settings, session)


#: What ``check`` asks the speech service to say: one short word, so that it costs next to nothing.
CHECK_WORD = "Hello."
CHECK_INSTRUCTIONS = "Speak clearly."


async def check_speech_api(settings: Settings, session: aiohttp.ClientSession) -> list[Finding]:
    """Synthesize one short word as ``/speak`` would (model, default voice, default format), then as voice
    playback would (Opus, or what the service can make), then with ``instructions``; validate each body; for a
    failure, name the setting to change. Nothing is cached or written."""
    from bot.audio.decode import AudioDecodeError
    from bot.audio.validate import check_audio
    from bot.speech.client import MODELS_WITHOUT_INSTRUCTIONS, OpenAISpeechClient, Timeouts
    from bot.speech.errors import SpeechError
    from bot.speech.factory import endpoint_capabilities
    from bot.speech.models import PLAYBACK_FORMAT, SpeechRequest, read_all
    from bot.speech.retry import RetryPolicy
    from bot.speech.voices import offered_voices

    base = settings.speech_api_base_url
    settings, offer = await offered_voices(settings, session)
    capabilities = endpoint_capabilities(settings, offer.source)
    client = OpenAISpeechClient(
        session, base_url=base, api_key=settings.speech_api_key, model=settings.speech_model,
        voices=settings.speech_voices, policy=RetryPolicy(max_attempts=1),
        timeouts=Timeouts(first_byte=settings.speech_timeout, between_chunks=settings.speech_timeout),
        capabilities=capabilities,
    )
    voices = Finding(True, f"speech: {len(offer.voices)} voices offered, from {offer.source} "
                           f"(default {offer.default_voice})")
    voice_warnings = [Finding(True, f"speech: {warning}", warning=True) for warning in offer.warnings]

    async def say(request: SpeechRequest) -> tuple[AudioFormat, int] | Finding:
        try:
            audio = await read_all(await client.open(request))
            await asyncio.to_thread(check_audio, audio.data, audio.format)
        except SpeechError as exc:
            return speech_problem(settings, exc, request)
        except AudioDecodeError as exc:
            return Finding(False, f"speech: the service sent damaged {request.format.value} audio ({exc})",
                           "Try another SPEECH_DEFAULT_FORMAT, or check the speech server.")
        return audio.format, len(audio.data)

    voice, fmt = settings.default_voice, settings.default_format
    made = await say(SpeechRequest(CHECK_WORD, voice, fmt))
    if isinstance(made, Finding):
        if "SPEECH_DEFAULT_FORMAT" not in made.detail:
            return [voices, *voice_warnings, made]  # nothing else can work either
        findings = [voices, *voice_warnings, made]
        got = AudioFormat.WAV
    else:
        got, size = made
        sent = "" if got is fmt else f", sent as {got.value}"
        findings = [voices, *voice_warnings,
                    Finding(True, f"speech: {base}/audio/speech speaks (model {settings.speech_model}, voice {voice}, "
                                  f"{fmt.value}{sent}: {size} bytes of valid audio)")]

    played = await say(SpeechRequest(CHECK_WORD, voice, PLAYBACK_FORMAT, playback=True))
    if isinstance(played, Finding):
        findings.append(played)
    elif client.refused_formats:
        refused = ", ".join(sorted(f.value for f in client.refused_formats))
        findings.append(Finding(True, f"speech: voice and read-aloud get {played[0].value} (the service cannot "
                                      f"make {refused}; the bot transcodes for voice)"))
    else:
        findings.append(Finding(True, f"speech: voice and read-aloud get {played[0].value}"))

    if settings.speech_model not in MODELS_WITHOUT_INSTRUCTIONS:
        styled = await say(SpeechRequest(CHECK_WORD, voice, got, instructions=CHECK_INSTRUCTIONS))
        if isinstance(styled, Finding):
            findings.append(styled)
        elif client.accepts_instructions is False:
            findings.append(Finding(True, "speech: the service does not accept instructions (voice styles); the bot "
                                          "sends requests without them", warning=True))
        else:
            findings.append(Finding(True, "speech: the service accepts instructions (voice styles)"))
    if capabilities.pcm_rate is not None:
        findings.append(Finding(True, f"speech: pcm comes at {capabilities.pcm_rate} Hz"))
    if settings.probes_endpoint:
        from bot.speech.probe import CapabilityProbe

        await CapabilityProbe(client, capabilities, settings.speed_range, base).run()
    findings.extend(capability_findings(settings, capabilities))
    return findings


def capability_findings(settings: Settings, capabilities: EndpointCapabilities) -> list[Finding]:
    """The speeds the endpoint honours and whether its voices differ, as measured (or declared, or why not)."""
    findings = []
    speeds, offered = capabilities.speeds, settings.speed_range
    how = "declared" if capabilities.speeds_declared else "measured"
    if speeds is None:
        note = capabilities.probe_note or "SPEECH_PROBE"
        findings.append(Finding(True, f"speech: the speeds it honours are not measured ({note})"))
    elif speeds.low == speeds.high == 1.0:
        findings.append(Finding(True, f"speech: the service ignores speed ({how})",
                                "Users asking for another speed are told. If this is wrong, set SPEECH_SPEED_RANGE.",
                                warning=True))
    elif (speeds.low, speeds.high) != (offered.low, offered.high):
        findings.append(Finding(True, f"speech: the service honours speeds from {speeds} only ({how}), not {offered}",
                                "Users asking outside are told"
                                + ("." if capabilities.speeds_declared else
                                   f"; SPEECH_SPEED_RANGE={speeds.low:g}-{speeds.high:g} declares it without "
                                   "measuring."), warning=True))
    else:
        findings.append(Finding(True, f"speech: the service honours speeds from {speeds} ({how})"))
    if capabilities.voice_honoured is False:
        findings.append(Finding(True, "speech: every voice of the service sounds the same (measured)",
                                "Choosing a voice changes nothing: configure voices on the server, or set "
                                "SPEECH_VOICES to one voice.", warning=True))
    elif capabilities.voice_honoured:
        findings.append(Finding(True, "speech: its voices sound different (measured)"))
    return findings


def speech_problem(settings: Settings, error: SpeechError, request: SpeechRequest) -> Finding:
    """A failed synthesis as one finding naming the setting to change (and the server's own reason)."""
    from bot.speech.client import refuses_field, refuses_format
    from bot.speech.errors import SpeechAuthError, SpeechConnectionError, SpeechTimeoutError

    base = settings.speech_api_base_url
    said = f" The server said: {error.detail}" if error.detail else ""
    if isinstance(error, SpeechConnectionError):
        return Finding(False, f"speech: cannot reach {base}", "Check SPEECH_API_BASE_URL and the network.")
    if isinstance(error, SpeechTimeoutError):
        return Finding(False, f"speech: {base} did not answer within {settings.speech_timeout:g} s",
                       "Check SPEECH_API_BASE_URL, or raise SPEECH_TIMEOUT for a slow server.")
    if isinstance(error, SpeechAuthError) and error.status == 401:
        if settings.speech_api_key:
            return Finding(False, "speech: the API key was rejected (401)", "Check SPEECH_API_KEY." + said)
        return Finding(False, "speech: the service wants an API key (401)", "Set SPEECH_API_KEY." + said)
    if isinstance(error, SpeechAuthError):
        return Finding(False, f"speech: the service refused the bot ({error.status})",
                       "Check SPEECH_API_KEY and what it may use." + said)
    if error.status in (404, 405) or (error.status == 200 and "not audio" in error.user_message):
        hint = f" (e.g. SPEECH_API_BASE_URL={base}/v1)" if not base.rstrip("/").endswith("/v1") else ""
        what = f"HTTP {error.status}" if error.status != 200 else "a page that is not audio"
        if error.code in ("model_not_found", "invalid_model") or error.unavailable == "model":
            return Finding(False, f"speech: the service does not know the model {settings.speech_model}",
                           "Check SPEECH_MODEL." + said)
        return Finding(False, f"speech: {base}/audio/speech answered {what}: not a speech endpoint",
                       f"SPEECH_API_BASE_URL probably lacks its path{hint}." + said)
    if error.unavailable == "model" or refuses_field(error, "model"):
        return Finding(False, f"speech: the service does not know the model {settings.speech_model}",
                       "Check SPEECH_MODEL." + said)
    if error.unavailable == "voice" or refuses_field(error, "voice"):
        return Finding(False, f"speech: the service does not know the voice {request.voice}",
                       "Check SPEECH_DEFAULT_VOICE and SPEECH_VOICES." + said)
    if error.unavailable == "format" or refuses_format(error, request.format):
        return Finding(False, f"speech: the service cannot make {request.format.value} audio",
                       "Set SPEECH_DEFAULT_FORMAT to a format it makes (wav and pcm always work on Piper servers)."
                       + said)
    return Finding(False, f"speech: {error.user_message}", ("Check SPEECH_API_BASE_URL and SPEECH_MODEL." + said))


async def check_realtime(settings: Settings, session: aiohttp.ClientSession) -> Finding:
    """Open a Realtime session (which checks the key and the model; nothing is said, so nothing is billed)."""
    from bot.speech.errors import SpeechAuthError, SpeechError
    from bot.speech.realtime_protocol import realtime_url
    from bot.speech.realtime_session import RealtimeSession

    url = realtime_url(settings.speech_api_base_url, settings.speech_model)
    key = settings.speech_api_key.get_secret_value() if settings.speech_api_key else None
    try:
        realtime = await RealtimeSession.connect(session, url, api_key=key, timeout=_TIMEOUT.total or 10)
    except SpeechAuthError as exc:
        return Finding(False, f"speech: the API key was rejected ({exc.status})", "Check SPEECH_API_KEY.")
    except SpeechError as exc:
        if exc.code in ("model_not_found", "invalid_model") or exc.status == 404:
            return Finding(
                False,
                f"speech: {settings.speech_api_base_url} does not serve {settings.speech_model} over the Realtime API",
                f"Check SPEECH_MODEL (e.g. {RECOMMENDED_REALTIME_MODEL}) and SPEECH_API_BASE_URL.",
            )
        return Finding(
            False,
            f"speech: cannot open a Realtime session at {settings.speech_api_base_url} ({exc.user_message})",
            "Check SPEECH_API_BASE_URL and the network.",
        )
    await realtime.close()
    return Finding(True, f"speech: {engine_description(settings)} answers")


#: Discord's rate limit on a diagnostic GET is waited out this many times, when it asks for at most this long.
_RATE_LIMIT_RETRIES = 2
_MAX_RATE_LIMIT_WAIT = 10.0


async def _discord_get(settings: Settings, session: aiohttp.ClientSession, path: str) -> tuple[int, object]:
    """GET a Discord REST path as the bot: (status, JSON body or None). Raises DiscordUnreachable.

    Discord's own 429 (it comes with ``Via``) is waited out like discord.py does, so that the login right after
    does not run into a global limit; Cloudflare's 429 (no ``Via``: a ban) is returned as it is.
    """
    assert settings.discord_token is not None
    base = settings.discord_api_base or DISCORD_API_BASE
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}", "User-Agent": _USER_AGENT}
    try:
        for retry in range(_RATE_LIMIT_RETRIES + 1):
            async with session.get(f"{base}{path}", headers=headers, timeout=_TIMEOUT) as resp:
                json_body = resp.status == 200 or (resp.status == 429 and resp.content_type == "application/json")
                data = await resp.json(content_type=None) if json_body else None
                wait = _rate_limit_wait(resp, data)
                if wait is None or retry == _RATE_LIMIT_RETRIES:
                    return resp.status, (data if resp.status == 200 else None)
            await asyncio.sleep(wait)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        raise DiscordUnreachable from None
    raise AssertionError("unreachable")


def _rate_limit_wait(resp: aiohttp.ClientResponse, data: object) -> float | None:
    """Seconds Discord's 429 asks to wait (its body's ``retry_after``), or None: not one to wait out."""
    if resp.status != 429 or not resp.headers.get("Via") or not isinstance(data, dict):
        return None
    wait = data.get("retry_after")
    if not isinstance(wait, (int, float)) or not 0 <= wait <= _MAX_RATE_LIMIT_WAIT:
        return None
    return float(wait)


class DiscordUnreachable(Exception):
    """The Discord API (or DISCORD_API_BASE) did not answer."""


async def check_discord_token(settings: Settings, session: aiohttp.ClientSession) -> Finding:
    try:
        status, data = await _discord_get(settings, session, "/users/@me")
    except DiscordUnreachable:
        return Finding(False, "discord: cannot reach the Discord API", "Check the network (or DISCORD_API_BASE).")
    if status == 401:
        return Finding(False, "discord: DISCORD_TOKEN was rejected", "Reset the token in the developer portal.")
    if status != 200 or not isinstance(data, dict):
        return Finding(False, f"discord: unexpected answer {status} from /users/@me")
    return Finding(True, f"discord: token is valid (bot user id {data.get('id')})")


#: Application flags meaning the Message Content intent is switched on in the developer portal.
_MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)


async def message_content_allowed(settings: Settings, session: aiohttp.ClientSession) -> bool | None:
    """Whether the Message Content intent is on in the developer portal; None when it cannot be told."""
    try:
        _, data = await _discord_get(settings, session, "/oauth2/applications/@me")
    except DiscordUnreachable:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("flags"), int):
        return None
    return bool(data["flags"] & _MESSAGE_CONTENT_FLAGS)


#: Where the switch is, for every message that mentions it.
MESSAGE_CONTENT_HOWTO = (
    "Developer portal → your application → Bot → Privileged Gateway Intents → Message Content Intent."
)


async def check_message_content_intent(settings: Settings, session: aiohttp.ClientSession) -> Finding:
    """Read-aloud needs the privileged Message Content intent; without it the bot runs with read-aloud off."""
    allowed = await message_content_allowed(settings, session)
    if allowed is None:
        return Finding(False, "discord: could not read the application's intents")
    if allowed:
        return Finding(True, "discord: the Message Content intent is on")
    return Finding(
        False, "discord: the Message Content intent is off (read-aloud is off until it is on)", MESSAGE_CONTENT_HOWTO
    )


def check_ssl_cert_file() -> Finding | None:
    """Only relevant when a custom CA is configured (a REST proxy, or the test double)."""
    path = os.environ.get("SSL_CERT_FILE")
    if not path:
        return None
    if not os.path.isfile(path):
        return Finding(False, f"SSL_CERT_FILE points to {path}, which does not exist", "Fix or unset it.")
    return Finding(True, f"SSL_CERT_FILE {path} exists")
