"""``speechbot check``: find what a new operator got wrong, and say what to do about it."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp

from bot import __version__
from bot.config import Settings
from bot.speech.catalog import OPENAI_BASE_URL, RECOMMENDED_REALTIME_MODEL, shutdown_date

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
    findings.append(await check_speech(settings, session))
    if (shutdown := check_model_shutdown(settings)) is not None:
        findings.append(shutdown)
    findings.append(check_fallback(settings))
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
    """Why files cannot be written in ``path`` (created if missing), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


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
    """Open the store (which applies migrations, as ``run`` would) and ask it something."""
    from bot.storage import StorageError, Store

    try:
        store = await Store.open(settings.database_url)
    except StorageError as exc:
        return Finding(False, "database: cannot be opened", f"{exc} Check DATABASE_URL.")
    try:
        await store.ping()
    except StorageError as exc:
        return Finding(False, "database: does not answer", str(exc))
    finally:
        await store.close()
    return Finding(True, "database: reachable and up to date")


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


def speech_summary(settings: Settings, engines: Sequence[str]) -> list[tuple[int, str]]:
    """What ``speechbot run`` logs at start, with log levels: the engine, its model's shutdown (a WARNING), the
    fallback."""
    lines = [(logging.INFO, f"speech: {engine_description(settings)}")]
    if (shutdown := check_model_shutdown(settings)) is not None:
        lines.append((logging.WARNING, f"{shutdown.what}. {shutdown.detail}"))
    lines.append((logging.INFO, f"speech fallback: {fallback_description(engines[1:])}"))
    return lines


async def check_speech(settings: Settings, session: aiohttp.ClientSession) -> Finding:
    if settings.uses_realtime_engine:
        return await check_realtime(settings, session)
    if settings.uses_local_engine:
        from bot.speech.local import INSTALL_HINT, LocalSpeechEngine

        if LocalSpeechEngine.is_installed():
            return Finding(True, "speech: offline engine (piper) is installed")
        return Finding(
            False,
            "speech: no API key and the offline engine is not installed",
            f"Install it with: {INSTALL_HINT}, or set SPEECH_API_KEY.",
        )
    url = f"{settings.speech_api_base_url}/models"
    headers = {}
    if settings.speech_api_key:
        headers["Authorization"] = f"Bearer {settings.speech_api_key.get_secret_value()}"
    try:
        async with session.get(url, headers=headers, timeout=_TIMEOUT) as resp:
            status = resp.status
    except (TimeoutError, aiohttp.ClientError):
        return Finding(
            False,
            f"speech: cannot reach {settings.speech_api_base_url}",
            "Check SPEECH_API_BASE_URL and the network.",
        )
    if status in (401, 403):
        return Finding(False, f"speech: the API key was rejected ({status})", "Check SPEECH_API_KEY.")
    return Finding(True, f"speech: {settings.speech_api_base_url} is reachable (model {settings.speech_model})")


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
