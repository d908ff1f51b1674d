"""The stored values as frozen dataclasses, and the rules every written value must follow.

The rules live here rather than in the commands so that every writer (slash commands, imports, a future
dashboard) gets the same limits and the same user-facing messages. Values read back from the database go
through the same rules (once per cache period), so a stored value that a newer rule forbids fails loudly; a
change that narrows a rule therefore ships with a migration that fixes old rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict, TypeGuard, TypeVar, Unpack

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat
from bot.setting_choices import CodeMode, EmojiMode, LinkMode, NameMode, SayName, SpeakOutput
from bot.speech.models import MAX_INPUT_CHARS, MAX_INSTRUCTIONS_CHARS, MAX_SPEED, MIN_SPEED
from bot.storage.errors import DictionaryError, SettingsError
from bot.text.dictionary import MAX_ENTRIES, validate_entry

#: Discord IDs are stored as signed 64-bit integers (every real snowflake fits).
MAX_ID = 2**63 - 1
MAX_VOICE_CHARS = 100
MAX_SPOKEN_NAME_CHARS = 50
MAX_READ_CHANNELS = 50
#: Every entry is applied to every message read aloud, so a guild's dictionary stays small.
MAX_DICTIONARY_ENTRIES = MAX_ENTRIES
MAX_BUDGET_CHARS = 10**9

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """One server's configuration; the defaults are what a server that never changed anything gets.

    ``None`` means "use the bot's own setting" (voice, format, timeouts) or "no limit" (roles, budgets).
    Times are whole seconds; budgets count characters sent to the speech engine.
    """

    read_channel_ids: tuple[int, ...] = ()
    autojoin: bool = False
    default_voice: str | None = None
    default_speed: float = 1.0
    default_format: AudioFormat | None = None
    default_instructions: str | None = None
    speak_output: SpeakOutput = SpeakOutput.FILE
    say_name: SayName = SayName.ON_CHANGE
    name_repeat_window: int = 30
    name_mode: NameMode = NameMode.DISPLAY
    max_message_chars: int = 300
    max_repeat_chars: int = 3
    emoji_mode: EmojiMode = EmojiMode.NAME
    link_mode: LinkMode = LinkMode.DOMAIN
    code_mode: CodeMode = CodeMode.READ
    skip_bots: bool = True
    require_author_in_voice: bool = True
    optout_prefix: str = ";"
    required_role_id: int | None = None
    deny_role_id: int | None = None
    moderator_role_id: int | None = None
    idle_timeout: int | None = None
    alone_timeout: int | None = None
    announce_joins: bool = False
    backlog_speedup: float = 1.0
    daily_char_budget: int | None = None
    monthly_char_budget: int | None = None
    user_chars_per_minute: int | None = None

    def replace(self, **changes: Unpack[GuildSettingsChanges]) -> GuildSettings:
        """A copy with ``changes`` applied, each checked and normalized; :class:`SettingsError` otherwise."""
        return self.with_values(changes)

    def with_values(self, values: Mapping[str, object]) -> GuildSettings:
        """:meth:`replace` for setting names known only at run time (a database row, a name picked from a list);
        an unknown name is a :class:`SettingsError` too."""
        return dataclasses.replace(self, **_validated(_GUILD_RULES, values))


class GuildSettingsChanges(TypedDict, total=False):
    """Some of :class:`GuildSettings`' fields, with the types callers pass (:meth:`GuildSettings.replace`,
    ``Store.update_guild_settings``); the values are checked again when applied, against the rules below."""

    read_channel_ids: Iterable[int]  # any order, repeats allowed: stored sorted, once each
    autojoin: bool
    default_voice: str | None
    default_speed: float
    default_format: AudioFormat | None
    default_instructions: str | None
    speak_output: SpeakOutput
    say_name: SayName
    name_repeat_window: int
    name_mode: NameMode
    max_message_chars: int
    max_repeat_chars: int
    emoji_mode: EmojiMode
    link_mode: LinkMode
    code_mode: CodeMode
    skip_bots: bool
    require_author_in_voice: bool
    optout_prefix: str
    required_role_id: int | None
    deny_role_id: int | None
    moderator_role_id: int | None
    idle_timeout: int | None
    alone_timeout: int | None
    announce_joins: bool
    backlog_speedup: float
    daily_char_budget: int | None
    monthly_char_budget: int | None
    user_chars_per_minute: int | None


@dataclass(frozen=True, slots=True)
class UserPrefs:
    """A user's own choices in one scope (a server, or everywhere); ``None`` means "not chosen here"."""

    voice: str | None = None
    speed: float | None = None
    instructions: str | None = None
    spoken_name: str | None = None

    def replace(self, **changes: Unpack[UserPrefsChanges]) -> UserPrefs:
        """A copy with ``changes`` applied and checked; ``None`` clears a choice."""
        return dataclasses.replace(self, **_validated(_USER_RULES, changes))

    def over(self, fallback: UserPrefs) -> UserPrefs:
        """These choices, with the unset ones taken from ``fallback`` (server choices over global ones)."""
        return UserPrefs(
            **{f.name: _first_set(getattr(self, f.name), getattr(fallback, f.name)) for f in dataclasses.fields(self)}
        )

    def effective(self, guild: GuildSettings) -> EffectivePrefs:
        """What to speak with: the user's choice, else the server's default (``voice`` None = bot default)."""
        return EffectivePrefs(
            voice=_first_set(self.voice, guild.default_voice),
            speed=_first_set(self.speed, guild.default_speed),
            instructions=_first_set(self.instructions, guild.default_instructions),
            spoken_name=self.spoken_name,
        )

    @property
    def is_empty(self) -> bool:
        return self == UserPrefs()


class UserPrefsChanges(TypedDict, total=False):
    """Some of :class:`UserPrefs`' fields (``None`` clears a choice); checked again when applied."""

    voice: str | None
    speed: float | None
    instructions: str | None
    spoken_name: str | None


@dataclass(frozen=True, slots=True)
class EffectivePrefs:
    """The resolved choices for one user in one server (``spoken_name`` None = use their Discord name)."""

    voice: str | None
    speed: float
    instructions: str | None
    spoken_name: str | None


@dataclass(frozen=True, slots=True)
class DictionaryEntry:
    """Say ``replacement`` wherever ``pattern`` appears. Checked on construction (by bot.text's rules, which
    apply it), so any entry that exists can be stored and will be used."""

    pattern: str
    replacement: str
    is_regex: bool = False
    created_by: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not isinstance(self.replacement, str):
            raise DictionaryError("The pattern and the replacement must be text.")
        if not isinstance(self.is_regex, bool):
            raise DictionaryError("is_regex must be true or false.")
        if self.created_by is not None and not _is_id(self.created_by):
            raise DictionaryError("created_by must be a user ID.")
        validate_entry(self)

    @classmethod
    def from_record(cls, record: object, *, created_by: int | None = None) -> DictionaryEntry:
        """An entry from an imported record ``{"pattern", "replacement", "is_regex"?}`` (parsed JSON)."""
        if not isinstance(record, Mapping):
            raise DictionaryError("Each entry must be an object with a pattern and a replacement.")
        if unknown := set(record) - {"pattern", "replacement", "is_regex"}:
            raise DictionaryError(f"Unknown field {sorted(map(str, unknown))[0]!r}.")
        if "pattern" not in record or "replacement" not in record:
            raise DictionaryError("Each entry needs a pattern and a replacement.")
        return cls(record["pattern"], record["replacement"], record.get("is_regex", False), created_by)


def parse_entries(records: Iterable[object], *, created_by: int | None = None) -> list[DictionaryEntry]:
    """Entries for an import, or :class:`DictionaryError` naming the first bad one (counting from 1)."""
    entries = []
    for number, record in enumerate(records, start=1):
        try:
            entries.append(DictionaryEntry.from_record(record, created_by=created_by))
        except DictionaryError as exc:
            raise DictionaryError(f"Entry {number}: {exc.message}") from None
    check_entry_set(entries)
    return entries


def check_entry_set(entries: Iterable[DictionaryEntry]) -> None:
    """Refuse a whole dictionary with a repeated pattern or more entries than a server may have."""
    seen: set[str] = set()
    count = 0
    for entry in entries:
        count += 1
        if entry.pattern in seen:
            raise DictionaryError(f"The pattern {entry.pattern!r} appears more than once.")
        seen.add(entry.pattern)
    if count > MAX_DICTIONARY_ENTRIES:
        raise DictionaryError(f"A dictionary holds at most {MAX_DICTIONARY_ENTRIES} entries, not {count}.")


@dataclass(frozen=True, slots=True)
class Mute:
    user_id: int
    muted_by: int | None
    muted_at: datetime


@dataclass(frozen=True, slots=True)
class VoiceRecord:
    """A voice channel the bot was in on a server, kept so that it comes back there after a restart."""

    guild_id: int
    channel_id: int
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Usage:
    """Characters sent to the speech service and the number of requests, summed over some days; and what the
    fallback engine said while the service could not (shown, never counted against budgets)."""

    characters: int = 0
    requests: int = 0
    fallback_characters: int = 0
    fallback_requests: int = 0


# --- validation rules: each returns the normalized value or raises SettingsError naming the setting ---

Rule = Callable[[str, object], object]


def _validated(rules: Mapping[str, Rule], changes: Mapping[str, object]) -> dict[str, Any]:
    normalized: dict[str, Any] = {}
    for name, value in changes.items():
        rule = rules.get(name)
        if rule is None:
            raise SettingsError(name, f"There is no setting called {name!r}.")
        normalized[name] = rule(name, value)
    return normalized


def _switch(label: str) -> Rule:
    def check(name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise SettingsError(name, f"{label} must be on or off.")
        return value

    return check


def _whole(label: str, low: int, high: int, unit: str, *, optional: bool = False) -> Rule:
    def check(name: str, value: object) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingsError(name, f"{label} must be a whole number of {unit} between {low} and {high}.")
        return value

    return check


def _number(label: str, low: float, high: float, *, optional: bool = False) -> Rule:
    def check(name: str, value: object) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingsError(name, f"{label} must be between {low} and {high}.")
        if not low <= value <= high:
            raise SettingsError(name, f"{label} must be between {low} and {high}.")
        return float(value)

    return check


def _choice(label: str, kind: type[StrEnum]) -> Rule:
    def check(name: str, value: object) -> StrEnum:
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
        raise SettingsError(name, f"{label} must be one of: {', '.join(kind)}.")

    return check


def _text(label: str, limit: int, *, optional: bool = True, one_line: bool = True) -> Rule:
    """Stripped text of at most ``limit`` characters; empty clears it when ``optional``."""

    def check(name: str, value: object) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise SettingsError(name, f"{label} must be text.")
        text = value.strip()
        if not text and optional:
            return None
        if len(text) > limit:
            raise SettingsError(name, f"{label} can be at most {limit} characters long.")
        if one_line and not text.isprintable():
            raise SettingsError(name, f"{label} must be a single line of plain text.")
        return text

    return check


def _format(name: str, value: object) -> AudioFormat | None:
    if value is None:
        return None
    allowed = [f.value for f in REQUESTABLE_FORMATS]
    if value not in allowed:
        raise SettingsError(name, f"The default format must be one of: {', '.join(allowed)}.")
    return AudioFormat(value)


def _optout_prefix(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > 5 or any(c.isspace() for c in value):
        raise SettingsError(name, "The opt-out prefix must be at most 5 characters without spaces (empty = none).")
    return value


def _role(label: str) -> Rule:
    def check(name: str, value: object) -> int | None:
        if value is None or _is_id(value):
            return value
        raise SettingsError(name, f"{label} must be a role ID, or none.")

    return check


def _channels(name: str, value: object) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise SettingsError(name, "The read channels must be a list of channel IDs.")
    ids = sorted(set(value))
    if not all(_is_id(v) for v in ids):
        raise SettingsError(name, "The read channels must be a list of channel IDs.")
    if len(ids) > MAX_READ_CHANNELS:
        raise SettingsError(name, f"At most {MAX_READ_CHANNELS} channels can be read aloud.")
    return tuple(ids)


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _first_set(value: _T | None, fallback: _T) -> _T:
    return fallback if value is None else value


_GUILD_RULES: dict[str, Rule] = {
    "read_channel_ids": _channels,
    "autojoin": _switch("Auto-join"),
    "default_voice": _text("The default voice", MAX_VOICE_CHARS),
    "default_speed": _number("The default speed", MIN_SPEED, MAX_SPEED),
    "default_format": _format,
    "default_instructions": _text("The default instructions", MAX_INSTRUCTIONS_CHARS, one_line=False),
    "speak_output": _choice("Speak output", SpeakOutput),
    "say_name": _choice("Say name", SayName),
    "name_repeat_window": _whole("The name repeat window", 0, 3600, "seconds"),
    "name_mode": _choice("Name mode", NameMode),
    "max_message_chars": _whole("The message length limit", 1, MAX_INPUT_CHARS, "characters"),
    "max_repeat_chars": _whole("The repeated-character limit", 1, 50, "characters"),
    "emoji_mode": _choice("Emoji mode", EmojiMode),
    "link_mode": _choice("Link mode", LinkMode),
    "code_mode": _choice("Code mode", CodeMode),
    "skip_bots": _switch("Skip bots"),
    "require_author_in_voice": _switch("Require author in voice"),
    "optout_prefix": _optout_prefix,
    "required_role_id": _role("The required role"),
    "deny_role_id": _role("The denied role"),
    "moderator_role_id": _role("The moderator role"),
    "idle_timeout": _whole("The idle timeout", 10, 86_400, "seconds", optional=True),
    "alone_timeout": _whole("The alone timeout", 0, 86_400, "seconds", optional=True),
    "announce_joins": _switch("Announce joins"),
    "backlog_speedup": _number("The backlog speed-up", 1.0, 1.5),
    "daily_char_budget": _whole("The daily budget", 1, MAX_BUDGET_CHARS, "characters", optional=True),
    "monthly_char_budget": _whole("The monthly budget", 1, MAX_BUDGET_CHARS, "characters", optional=True),
    "user_chars_per_minute": _whole("The per-user rate", 1, MAX_BUDGET_CHARS, "characters", optional=True),
}

_USER_RULES: dict[str, Rule] = {
    "voice": _text("The voice", MAX_VOICE_CHARS),
    "speed": _number("Speed", MIN_SPEED, MAX_SPEED, optional=True),
    "instructions": _text("The instructions", MAX_INSTRUCTIONS_CHARS, one_line=False),
    "spoken_name": _text("The spoken name", MAX_SPOKEN_NAME_CHARS),
}


def _check_changes_match(kind: type, changes: type, rules: Mapping[str, Rule]) -> None:
    """The typed changes, the dataclass and its rules name the same settings (checked once, at import)."""
    fields = {f.name for f in dataclasses.fields(kind)}
    if set(changes.__annotations__) != fields or set(rules) != fields:
        raise RuntimeError(f"{changes.__name__} and the rules must name exactly the fields of {kind.__name__}")


_check_changes_match(GuildSettings, GuildSettingsChanges, _GUILD_RULES)
_check_changes_match(UserPrefs, UserPrefsChanges, _USER_RULES)
