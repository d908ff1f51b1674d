"""Settings: read once from the environment (``.env`` included) into one frozen object.

:func:`load_settings` is pure (it takes a mapping), reports every problem at once and names the variable,
so tests pass plain dicts and a server owner sees all mistakes in one run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat
from bot.setting_choices import SpeechLanguage
from bot.speech.catalog import (
    CLASSIC_VOICES,
    REALTIME_SPEEDS,
    REALTIME_VOICES,
    SPEECH_API_SPEEDS,
    SpeedRange,
    default_voices,
    is_realtime_model,
    is_realtime_voice,
    parse_speed_range,
)

DEFAULT_SPEECH_API_BASE_URL = "https://api.apimart.ai/v1"
DEFAULT_SPEECH_MODEL = "gpt-4o-mini-tts"

DEFAULT_DATA_DIR = "data"


class Secret:
    """A string that never shows itself in ``repr``/``str`` (tokens, API keys)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class SpeechBackendChoice(StrEnum):
    AUTO = "auto"
    OPENAI = "openai"
    LOCAL = "local"


class SpeechProbe(StrEnum):
    """``SPEECH_PROBE``: whether the bot measures the endpoint's speeds and voices once after start."""

    AUTO = "auto"  # yes, unless the endpoint is a paid one (OpenAI, apimart): the measuring costs money there
    ON = "on"
    OFF = "off"


class Fallback(StrEnum):
    """An engine ``SPEECH_FALLBACK`` may name."""

    LOCAL = "local"


class ConfigError(Exception):
    """One or more settings are wrong; ``problems`` holds one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Settings:
    discord_token: Secret | None
    speech_api_base_url: str
    speech_api_key: Secret | None
    speech_model: str
    speech_voices: tuple[str, ...]
    speech_backend: SpeechBackendChoice
    default_voice: str
    default_format: AudioFormat
    data_dir: Path
    database_url: str
    dev_guild_id: int | None
    discord_api_base: str | None
    discord_gateway_url: str | None
    log_level: str
    speech_timeout: float = 20.0
    discord_connect_timeout: float = 60.0
    speech_breaker_failures: int = 5
    speech_breaker_cooldown: float = 30.0
    voice_idle_timeout: float = 300.0
    voice_alone_timeout: float = 30.0
    voice_queue_size: int = 20
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    read_hold: float = 1.0
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    cache_dir: Path | None = None  # None: DATA_DIR/cache (see ``audio_cache_dir``)
    cache_memory_bytes: int = 32 * 1024 * 1024
    cache_disk_bytes: int = 512 * 1024 * 1024
    #: ``SPEECH_FALLBACK``: engines tried in order when the primary cannot serve; None = the default (the offline
    #: engine when it is installed, which only the speech factory can tell), () = none.
    speech_fallback: tuple[Fallback, ...] | None = None
    realtime_sessions: int = 8
    #: Whether ``SPEECH_VOICES`` was set: the operator's list then narrows what the server lists.
    speech_voices_set: bool = False
    speech_probe: SpeechProbe = SpeechProbe.AUTO
    #: ``SPEECH_SPEED_RANGE``: the speeds the endpoint honours, as the operator declares them (no measuring).
    declared_speeds: SpeedRange | None = None
    #: ``OWNER_IDS``: who may use ``/owner``; () = the application's owner or team, as Discord reports them.
    owner_ids: tuple[int, ...] = ()
    #: ``LOCAL_VOICES``: (language, piper model path) pairs, languages as ``/settings language`` names them.
    local_voices: tuple[tuple[str, Path], ...] = ()

    @property
    def audio_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    @property
    def uses_local_engine(self) -> bool:
        """True when speech comes from the offline engine (``auto`` without a key, or ``local``)."""
        if self.speech_backend is SpeechBackendChoice.AUTO:
            return not self.speech_api_key
        return self.speech_backend is SpeechBackendChoice.LOCAL

    @property
    def uses_realtime_engine(self) -> bool:
        """True when speech comes from the Realtime API: a ``gpt-realtime...`` ``SPEECH_MODEL`` on the API."""
        return not self.uses_local_engine and is_realtime_model(self.speech_model)

    @property
    def engine_name(self) -> str:
        """The primary engine: ``local``, ``realtime`` or ``openai`` (the /audio/speech API)."""
        if self.uses_local_engine:
            return "local"
        return "realtime" if self.uses_realtime_engine else "openai"

    @property
    def speed_range(self) -> SpeedRange:
        """The speeds the primary engine can do; anything outside is refused, never clamped."""
        return REALTIME_SPEEDS if self.uses_realtime_engine else SPEECH_API_SPEEDS

    @property
    def probes_endpoint(self) -> bool:
        """Whether the /audio/speech endpoint's speeds and voices are measured after start (``SPEECH_PROBE``):
        never the Realtime API or the offline engine, never a paid host unless asked (it costs money)."""
        if self.engine_name != "openai" or self.speech_probe is SpeechProbe.OFF:
            return False
        return self.speech_probe is SpeechProbe.ON or not _is_known_paid_host(self.speech_api_base_url)


#: Discord's own ceiling is far lower for any real bot; this only catches typos.
MAX_SHARDS = 65_536
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable, declared once: the loader takes its default and bounds from here, and the
    configuration reference (``python -m bot.config_reference``, docs/configuration.md) is generated from it."""

    name: str
    #: One line: what the variable is for (also the comment above it in ``.env.example``).
    meaning: str
    #: What the loader uses when the variable is unset or empty ("" = no value).
    default: str = ""
    #: The default in words, when it depends on other settings or means "off".
    default_text: str = ""
    #: The values accepted, in words; a number's range comes from ``low`` and ``high`` instead.
    allowed: str = ""
    low: float | None = None
    high: float | None = None

    @property
    def shown_default(self) -> str:
        return self.default_text or (f"`{self.default}`" if self.default else "empty")

    @property
    def shown_allowed(self) -> str:
        if self.low is not None and self.high is not None:
            return f"a number from {_plain(self.low)} to {_plain(self.high)}"
        return self.allowed


def _plain(number: float) -> str:
    """``3600.0`` as ``3600``, ``0.5`` as ``0.5``: how a person would write a bound."""
    return str(int(number)) if number == int(number) else str(number)


#: Every variable the loader reads, in the order of ``.env.example`` (a test keeps both in sync with the loader).
DECLARATIONS: tuple[Variable, ...] = (
    Variable(
        "DISCORD_TOKEN", "Bot token from the Discord developer portal (required for `speechbot run`).",
        default_text="none (`speechbot run` refuses to start without it)", allowed="the bot's token",
    ),
    Variable(
        "SPEECH_API_BASE_URL", "Base URL of an OpenAI-compatible speech API (POST {base}/audio/speech).",
        default=DEFAULT_SPEECH_API_BASE_URL, allowed="an `http://` or `https://` URL",
    ),
    Variable(
        "SPEECH_API_KEY", "Bearer key for the speech API. Empty = use the offline engine (with SPEECH_BACKEND=auto).",
        default_text="empty (the offline engine)", allowed="the key your speech service gave you",
    ),
    Variable(
        "SPEECH_MODEL", "Model name sent to the speech API; gpt-realtime... uses the Realtime API (a WebSocket).",
        default=DEFAULT_SPEECH_MODEL,
        allowed="a model the endpoint serves; a name starting with `gpt-realtime` uses the Realtime API",
    ),
    Variable(
        "SPEECH_VOICES",
        "Comma-separated voices offered to users; empty = the server's own list (GET /audio/voices), else the "
        "model's. Set: only these (of those the server lists).",
        default_text="empty: the server's list; without one, OpenAI's voices for its model on api.openai.com, "
                     f"`{','.join(CLASSIC_VOICES)}` elsewhere, with the Realtime API `{','.join(REALTIME_VOICES)}` "
                     "(see [What the bot learns about its speech server](speech-capabilities.md))",
        allowed="names separated by commas (printable, at most 100 characters each); with the Realtime API only "
                "its voices and custom ones named `voice_...`",
    ),
    Variable(
        "SPEECH_DEFAULT_VOICE", "Voice used when a user picks none (must be one of the voices offered).",
        default_text="the first of the voices offered", allowed="one of the voices offered",
    ),
    Variable(
        "SPEECH_PROBE",
        "auto, on or off: measure once after start which speeds the endpoint honours and whether its voices "
        "differ (auto: not on paid OpenAI or apimart).",
        default=SpeechProbe.AUTO.value, allowed=", ".join(f"`{p.value}`" for p in SpeechProbe),
    ),
    Variable(
        "SPEECH_SPEED_RANGE", "The speeds the endpoint really honours, e.g. 0.5-2; empty = measured (SPEECH_PROBE).",
        default_text="empty (measured)", allowed="two speeds from 0.25 to 4, lowest first, like `0.5-2`",
    ),
    Variable(
        "SPEECH_DEFAULT_FORMAT", "Audio format for /speak uploads when a user picks none: opus, wav, flac, aac or pcm.",
        default=AudioFormat.OPUS.value, allowed=", ".join(f"`{f.value}`" for f in REQUESTABLE_FORMATS),
    ),
    Variable(
        "SPEECH_BACKEND", "auto (the API when a key is set, else offline), openai, or local.",
        default=SpeechBackendChoice.AUTO.value, allowed=", ".join(f"`{c.value}`" for c in SpeechBackendChoice),
    ),
    Variable(
        "SPEECH_TIMEOUT", "Seconds to wait for the speech API's first byte (and between chunks).",
        default="20", low=1, high=600,
    ),
    Variable(
        "SPEECH_BREAKER_FAILURES",
        "Failures in a row (5xx, timeouts) after which speech requests fail fast for a while.",
        default="5", low=1, high=1000,
    ),
    Variable(
        "SPEECH_BREAKER_COOLDOWN",
        "Seconds speech requests fail fast once the endpoint keeps failing; then one is tried.",
        default="30", low=1, high=3600,
    ),
    Variable(
        "SPEECH_FALLBACK",
        "Engines tried in order when the API is down, out of credit or its model is gone: local or none.",
        default_text="`local` when the offline engine is installed, else `none`",
        allowed=", ".join(f"`{f.value}`" for f in Fallback) + " (a comma-separated list, tried in order), or `none`",
    ),
    Variable(
        "SPEECH_REALTIME_SESSIONS", "Most Realtime API sessions (WebSockets) open at once; idle ones are kept warm.",
        default="8", low=1, high=64,
    ),
    Variable(
        "LOCAL_VOICES",
        "Piper voice models the offline engine uses per server language, e.g. ja=/voices/ja.onnx,de=/voices/de.onnx "
        "(each .onnx with its .onnx.json); other languages use the built-in English voice.",
        default_text="empty (every language uses the built-in English voice)",
        allowed="`language=path` pairs separated by commas; languages as `/settings language` names them",
    ),
    Variable(
        "VOICE_IDLE_TIMEOUT", "Seconds with nothing to play before the bot leaves a voice channel.",
        default="300", low=1, high=86_400,
    ),
    Variable(
        "VOICE_ALONE_TIMEOUT", "Seconds the bot stays in a voice channel with no human left in it.",
        default="30", low=0, high=86_400,
    ),
    Variable(
        "VOICE_QUEUE_SIZE", "Most items waiting to be played per server; more are refused with a message.",
        default="20", low=1, high=1000,
    ),
    Variable(
        "READ_ALOUD_HOLD", "Seconds a chat message is held before it is played, so moderators and AutoMod can act "
                           "(servers can set their own).",
        default="1", low=0, high=10,
    ),
    Variable(
        "METRICS_PORT", "Serve Prometheus /metrics, /healthz and /readyz on this port; empty = off.",
        default_text="empty (off)", low=1, high=65535,
    ),
    Variable(
        "METRICS_HOST", "Address the metrics port listens on (127.0.0.1; 0.0.0.0 inside a container).",
        default="127.0.0.1", allowed="an address of this machine, or `0.0.0.0` for all of them",
    ),
    Variable(
        "CACHE_DIR", "Directory of the audio cache on disk; empty = DATA_DIR/cache. Files are named by a hash.",
        default_text="`DATA_DIR/cache`", allowed="a directory (`~` is expanded)",
    ),
    Variable(
        "CACHE_MEMORY_MB",
        "Most audio the audio cache keeps in memory, in MiB (least recently used goes first); 0 = none.",
        default="32", low=0, high=65_536,
    ),
    Variable(
        "CACHE_DISK_MB", "Most audio the audio cache keeps on disk, in MiB (least recently used goes first); 0 = off.",
        default="512", low=0, high=16_777_216,
    ),
    Variable(
        "DATA_DIR", "Directory for the bot's own files (database, command-sync state, audio cache).",
        default=DEFAULT_DATA_DIR, allowed="a directory (`~` is expanded); the container image sets `/data`",
    ),
    Variable(
        "DATABASE_URL", "sqlite:///path/file.db (default: a file in DATA_DIR) or postgresql://user@host/db.",
        default_text="`sqlite:///DATA_DIR/speechbot.db`",
        allowed="`sqlite:///path/file.db`, `postgresql://user:password@host:port/db` (or `postgres://...`)",
    ),
    Variable(
        "DEV_GUILD_ID", "Sync slash commands to this one server instantly (development); empty = global commands.",
        default_text="empty (global commands)", allowed="a server ID",
    ),
    Variable(
        "OWNER_IDS", "Who may use /owner: user IDs, comma-separated; empty = the application's owner or team.",
        default_text="empty (the application's owner, or its team's admins and developers, as Discord says)",
        allowed="user IDs separated by commas",
    ),
    Variable(
        "SHARD_COUNT",
        "Total shards across every bot process; empty = as many as Discord recommends, all in this process.",
        default_text="empty (Discord's recommendation, all in this process)",
        allowed=f"a whole number from 1 to {MAX_SHARDS}",
    ),
    Variable(
        "SHARD_IDS", "Shards this process runs, e.g. 0,1 or 0-3 (needs SHARD_COUNT); empty = all of them.",
        default_text="empty (all of them)", allowed="numbers and ranges below `SHARD_COUNT`: `0,1`, `0-3`, `0-3,8`",
    ),
    Variable(
        "DISCORD_API_BASE", "Override Discord's REST base URL (a REST proxy, or the test double).",
        default_text="Discord's", allowed="an `http://` or `https://` URL ending in `/api/v10`",
    ),
    Variable(
        "DISCORD_GATEWAY_URL", "Override Discord's gateway URL (the test double).",
        default_text="Discord's", allowed="a `ws://` or `wss://` URL",
    ),
    Variable(
        "DISCORD_CONNECT_TIMEOUT", "Seconds start-up waits for Discord's API and gateway before giving up (exit 1).",
        default="60", low=1, high=3600,
    ),
    Variable(
        "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR.",
        default="INFO", allowed=", ".join(f"`{level}`" for level in _LOG_LEVELS) + " (any case)",
    ),
)
_DECLARED: dict[str, Variable] = {variable.name: variable for variable in DECLARATIONS}

#: Every variable the loader reads, with its one-line documentation.
VARIABLES: dict[str, str] = {variable.name: variable.meaning for variable in DECLARATIONS}



def load_settings(env: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``env`` or raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []

    def get(name: str, default: str = "") -> str:
        return (env.get(name) or "").strip() or default

    def number(name: str, raw: str | None = None) -> float:
        """A numeric variable, with the default and bounds it is declared with."""
        declared = _DECLARED[name]
        if declared.low is None or declared.high is None:
            raise TypeError(f"{name} is not declared as a number")
        return _number(get(name, declared.default) if raw is None else raw, name, declared.low, declared.high, problems)

    token = get("DISCORD_TOKEN")
    key = get("SPEECH_API_KEY")

    base_url = get("SPEECH_API_BASE_URL", DEFAULT_SPEECH_API_BASE_URL).rstrip("/")
    if not _is_http_url(base_url):
        problems.append("SPEECH_API_BASE_URL must be an http:// or https:// URL, e.g. https://api.openai.com/v1.")

    model = get("SPEECH_MODEL", DEFAULT_SPEECH_MODEL)
    backend_raw = get("SPEECH_BACKEND", "auto").lower()
    # The Realtime API is used unless the offline engine is (a key, or SPEECH_BACKEND=openai).
    realtime = is_realtime_model(model) and backend_raw != "local" and (bool(key) or backend_raw == "openai")
    voices = tuple(dict.fromkeys(v.strip() for v in get("SPEECH_VOICES").split(",") if v.strip()))
    voices_set = bool(voices)
    voices = voices or (REALTIME_VOICES if realtime else default_voices(model, base_url))
    # the /audio/speech API: its own voice list, asked for at start, may offer other voices than these
    lists_voices = not realtime and backend_raw != "local" and (bool(key) or backend_raw == "openai")
    if bad := [v for v in voices if len(v) > 100 or not v.isprintable()]:
        problems.append(f"SPEECH_VOICES has an invalid voice name: {bad[0][:40]!r}.")
    elif realtime and (unknown := [v for v in voices if not is_realtime_voice(v)]):
        problems.append(
            f"SPEECH_VOICES has voices the Realtime API does not offer: {', '.join(unknown)[:200]}. "
            f"It offers {', '.join(REALTIME_VOICES)} (and custom voices named voice_...); "
            "leave SPEECH_VOICES empty to offer all of them."
        )

    default_voice = get("SPEECH_DEFAULT_VOICE", voices[0])
    if default_voice not in voices and not voices_set and lists_voices and default_voice.isprintable():
        # the server's own list (asked for at start) decides; until then the chosen voice leads the default list
        voices = (default_voice[:100], *voices)
    if default_voice not in voices:
        problems.append(f"SPEECH_DEFAULT_VOICE {default_voice!r} is not one of SPEECH_VOICES ({', '.join(voices)}).")

    default_format = AudioFormat.OPUS
    fmt_raw = get("SPEECH_DEFAULT_FORMAT", "opus").lower()
    try:
        default_format = AudioFormat(fmt_raw)
        if default_format not in REQUESTABLE_FORMATS:
            raise ValueError
    except ValueError:
        choices = ", ".join(f.value for f in REQUESTABLE_FORMATS)
        problems.append(f"SPEECH_DEFAULT_FORMAT must be one of {choices}, not {fmt_raw!r}.")

    backend = SpeechBackendChoice.AUTO
    try:
        backend = SpeechBackendChoice(backend_raw)
    except ValueError:
        problems.append(f"SPEECH_BACKEND must be auto, openai or local, not {backend_raw!r}.")
    if backend is SpeechBackendChoice.OPENAI and not key and _is_known_paid_host(base_url):
        problems.append("SPEECH_API_KEY is required when SPEECH_BACKEND=openai uses a hosted API.")

    timeout = number("SPEECH_TIMEOUT")
    breaker_failures = number("SPEECH_BREAKER_FAILURES")
    breaker_cooldown = number("SPEECH_BREAKER_COOLDOWN")
    idle_timeout = number("VOICE_IDLE_TIMEOUT")
    alone_timeout = number("VOICE_ALONE_TIMEOUT")
    queue_size = number("VOICE_QUEUE_SIZE")
    read_hold = number("READ_ALOUD_HOLD")

    probe = SpeechProbe.AUTO
    try:
        probe = SpeechProbe(get("SPEECH_PROBE", "auto").lower())
    except ValueError:
        problems.append(f"SPEECH_PROBE must be auto, on or off, not {get('SPEECH_PROBE')[:20]!r}.")
    declared_speeds = None
    if raw_speeds := get("SPEECH_SPEED_RANGE"):
        declared_speeds = parse_speed_range(raw_speeds)
        if declared_speeds is None:
            problems.append(
                f"SPEECH_SPEED_RANGE must be two speeds from 0.25 to 4, like 0.5-2, not {raw_speeds[:20]!r}."
            )

    fallback = _fallback(get("SPEECH_FALLBACK"), problems)
    realtime_sessions = number("SPEECH_REALTIME_SESSIONS")
    local_voices = _local_voices(get("LOCAL_VOICES"), problems)

    cache_memory_mb = number("CACHE_MEMORY_MB")
    cache_disk_mb = number("CACHE_DISK_MB")

    metrics_port = None
    if raw_port := get("METRICS_PORT"):
        metrics_port = int(number("METRICS_PORT", raw_port))

    data_dir = Path(get("DATA_DIR", DEFAULT_DATA_DIR)).expanduser()
    database_url = get("DATABASE_URL", f"sqlite:///{data_dir / 'speechbot.db'}")
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        problems.append("DATABASE_URL must start with sqlite:/// or postgresql://.")

    dev_guild_id = None
    if raw := get("DEV_GUILD_ID"):
        if raw.isdigit() and 0 < int(raw) < 2**64:
            dev_guild_id = int(raw)
        else:
            problems.append(f"DEV_GUILD_ID must be a server ID (a number), not {raw[:30]!r}.")

    shard_count, shard_ids = _shards(get("SHARD_COUNT"), get("SHARD_IDS"), problems)

    owner_ids: list[int] = []
    for raw_owner in filter(None, (part.strip() for part in get("OWNER_IDS", "").split(","))):
        if raw_owner.isdigit() and 0 < int(raw_owner) < 2**64:
            owner_ids.append(int(raw_owner))
        else:
            problems.append(f"OWNER_IDS must be user IDs (numbers) separated by commas, not {raw_owner[:30]!r}.")

    api_base = get("DISCORD_API_BASE") or None
    if api_base is not None and not _is_http_url(api_base):
        problems.append("DISCORD_API_BASE must be an http:// or https:// URL ending in /api/v10.")
    gateway_url = get("DISCORD_GATEWAY_URL") or None
    if gateway_url is not None and urlsplit(gateway_url).scheme not in ("ws", "wss"):
        problems.append("DISCORD_GATEWAY_URL must be a ws:// or wss:// URL.")

    connect_timeout = number("DISCORD_CONNECT_TIMEOUT")

    log_level = get("LOG_LEVEL", "INFO").upper()
    if log_level not in _LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, not {log_level!r}.")

    cache_dir = Path(raw_cache_dir).expanduser() if (raw_cache_dir := get("CACHE_DIR")) else None

    if problems:
        raise ConfigError(problems)
    return Settings(
        discord_token=Secret(token) if token else None,
        speech_api_base_url=base_url,
        speech_api_key=Secret(key) if key else None,
        speech_model=model,
        speech_voices=voices,
        speech_backend=backend,
        default_voice=default_voice,
        default_format=default_format,
        data_dir=data_dir,
        database_url=database_url,
        dev_guild_id=dev_guild_id,
        owner_ids=tuple(owner_ids),
        discord_api_base=api_base.rstrip("/") if api_base else None,
        discord_gateway_url=gateway_url,
        log_level=log_level,
        speech_timeout=timeout,
        discord_connect_timeout=connect_timeout,
        speech_breaker_failures=int(breaker_failures),
        speech_breaker_cooldown=breaker_cooldown,
        voice_idle_timeout=idle_timeout,
        voice_alone_timeout=alone_timeout,
        voice_queue_size=int(queue_size),
        metrics_port=metrics_port,
        metrics_host=get("METRICS_HOST", "127.0.0.1"),
        read_hold=read_hold,
        shard_count=shard_count,
        shard_ids=shard_ids,
        cache_dir=cache_dir,
        cache_memory_bytes=int(cache_memory_mb * 1024 * 1024),
        cache_disk_bytes=int(cache_disk_mb * 1024 * 1024),
        speech_fallback=fallback,
        realtime_sessions=int(realtime_sessions),
        local_voices=local_voices,
        speech_voices_set=voices_set,
        speech_probe=probe,
        declared_speeds=declared_speeds,
    )


def _local_voices(raw: str, problems: list[str]) -> tuple[tuple[str, Path], ...]:
    """``ja=/path/model.onnx,de=...`` → pairs; the files themselves are checked by :func:`local_voice_problems`
    (``speechbot check`` reports them, ``speechbot run`` refuses to start without them)."""
    pairs: dict[str, Path] = {}
    languages = ", ".join(language.value for language in SpeechLanguage)
    for item in filter(None, (part.strip() for part in raw.split(","))):
        language, equals, path = (piece.strip() for piece in item.partition("="))
        if not equals or not path:
            problems.append(f"LOCAL_VOICES entries are language=/path/to/model.onnx, not {item[:60]!r}.")
        elif language not in tuple(SpeechLanguage):
            problems.append(f"LOCAL_VOICES: {language[:20]!r} is not a language the bot speaks ({languages}).")
        elif language in pairs:
            problems.append(f"LOCAL_VOICES names {language} twice.")
        elif not path.endswith(".onnx"):
            problems.append(f"LOCAL_VOICES: the {language} voice must be a piper .onnx model, not {path[:80]!r}.")
        else:
            pairs[language] = Path(path).expanduser()
    return tuple(pairs.items())


def local_voice_problems(settings: Settings) -> list[str]:
    """What is missing of the ``LOCAL_VOICES`` models: each needs its ``.onnx`` and the ``.onnx.json`` beside it."""
    problems = []
    for language, model in settings.local_voices:
        config = model.with_name(model.name + ".json")
        if not model.is_file():
            problems.append(f"LOCAL_VOICES: the {language} voice model {model} does not exist.")
        elif not config.is_file():
            problems.append(f"LOCAL_VOICES: the {language} voice model needs its config {config} beside it.")
    return problems


def _fallback(raw: str, problems: list[str]) -> tuple[Fallback, ...] | None:
    """``SPEECH_FALLBACK``: ``local``, ``none`` or empty (the default); a comma-separated list, tried in order."""
    if not raw:
        return None
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    choices = ", ".join([*(f.value for f in Fallback), "none"])
    if names == ["none"]:
        return ()
    if not names or "none" in names or any(name not in {f.value for f in Fallback} for name in names):
        problems.append(f"SPEECH_FALLBACK must be a comma-separated list of {choices} (none alone), not {raw[:40]!r}.")
        return None
    return tuple(dict.fromkeys(Fallback(name) for name in names))


def _shards(raw_count: str, raw_ids: str, problems: list[str]) -> tuple[int | None, tuple[int, ...] | None]:
    """``SHARD_COUNT`` and ``SHARD_IDS`` ("0,1", "0-3", "0-3,8"): ids unique, sorted, each below the count."""
    count = None
    if raw_count:
        if raw_count.isdecimal() and 1 <= int(raw_count) <= MAX_SHARDS:
            count = int(raw_count)
        else:
            problems.append(f"SHARD_COUNT must be a whole number of shards, at least 1, not {raw_count[:30]!r}.")
    if not raw_ids:
        return count, None
    ids: set[int] = set()
    for part in raw_ids.split(","):
        low, dash, high = (piece.strip() for piece in part.partition("-"))
        high = high if dash else low
        if not (low.isdecimal() and high.isdecimal() and int(low) <= int(high) < MAX_SHARDS):
            problems.append(f"SHARD_IDS must be shard numbers and ranges like 0,1 or 0-3, not {raw_ids[:40]!r}.")
            return count, None
        ids.update(range(int(low), int(high) + 1))
    if not raw_count:
        problems.append("SHARD_IDS needs SHARD_COUNT (the total number of shards across every process).")
    elif count is not None and max(ids) >= count:
        problems.append(f"SHARD_IDS has shard {max(ids)}, but with SHARD_COUNT={count} shards are 0 to {count - 1}.")
    return count, tuple(sorted(ids))


def _number(raw: str, name: str, low: float, high: float, problems: list[str]) -> float:
    """``raw`` as a number within [low, high]; otherwise a problem naming ``name`` (and ``low``)."""
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        problems.append(f"{name} must be a number between {low:g} and {high:g}, not {raw[:30]!r}.")
        return low
    return value


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_known_paid_host(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host.endswith(("openai.com", "apimart.ai"))

