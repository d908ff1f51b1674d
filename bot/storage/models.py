"""The stored values as frozen dataclasses, and the typed changes callers make to them.

Every value written goes through the rules of :mod:`bot.storage.rules` (the same for every writer, and for
values read back from the database).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, TypeVar, Unpack

from bot.audio.formats import AudioFormat
from bot.setting_choices import (
    CodeMode,
    EmojiMode,
    HoldMode,
    LinkMode,
    NameMode,
    SayName,
    SpeakOutput,
    SpeechLanguage,
)
from bot.storage.errors import DictionaryError
from bot.storage.rules import GUILD_RULES, USER_RULES, Rule, is_id, validated
from bot.text.dictionary import MAX_ENTRIES, validate_entry

#: Every entry is applied to every message read aloud, so a guild's dictionary stays small.
MAX_DICTIONARY_ENTRIES = MAX_ENTRIES

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """One server's configuration; the defaults are what a server that never changed anything gets.

    ``None`` means "use the bot's own setting" (voice, format, timeouts) or "no limit" (roles, budgets).
    Times are whole seconds (the moderation hold, ``hold_seconds``, may be a fraction); budgets count characters
    sent to the speech engine.
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
    hold_mode: HoldMode = HoldMode.EARLY
    hold_seconds: float | None = None
    language: SpeechLanguage = SpeechLanguage.EN
    daily_char_budget: int | None = None
    monthly_char_budget: int | None = None
    user_chars_per_minute: int | None = None
    #: Members who chose no voice each get one derived from their id (``bot.policy.distinct_voice``), so that
    #: speakers are told apart.
    distinct_voices: bool = False

    def replace(self, **changes: Unpack[GuildSettingsChanges]) -> GuildSettings:
        """A copy with ``changes`` applied, each checked and normalized; :class:`SettingsError` otherwise."""
        return self.with_values(changes)

    def with_values(self, values: Mapping[str, object]) -> GuildSettings:
        """:meth:`replace` for setting names known only at run time (a database row, a name picked from a list);
        an unknown name is a :class:`SettingsError` too."""
        return dataclasses.replace(self, **validated(GUILD_RULES, values))


class GuildSettingsChanges(TypedDict, total=False):
    """Some of :class:`GuildSettings`' fields, with the types callers pass (:meth:`GuildSettings.replace`,
    ``Store.update_guild_settings``); the values are checked again when applied (:mod:`bot.storage.rules`)."""

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
    hold_mode: HoldMode
    hold_seconds: float | None
    language: SpeechLanguage
    daily_char_budget: int | None
    monthly_char_budget: int | None
    user_chars_per_minute: int | None
    distinct_voices: bool


@dataclass(frozen=True, slots=True)
class UserPrefs:
    """A user's own choices in one scope (a server, or everywhere); ``None`` means "not chosen here"."""

    voice: str | None = None
    speed: float | None = None
    instructions: str | None = None
    spoken_name: str | None = None

    def replace(self, **changes: Unpack[UserPrefsChanges]) -> UserPrefs:
        """A copy with ``changes`` applied and checked; ``None`` clears a choice."""
        return dataclasses.replace(self, **validated(USER_RULES, changes))

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
        if self.created_by is not None and not is_id(self.created_by):
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


def _first_set(value: _T | None, fallback: _T) -> _T:
    return fallback if value is None else value


def _check_changes_match(kind: type, changes: type, rules: Mapping[str, Rule]) -> None:
    """The typed changes, the dataclass and its rules name the same settings (checked once, at import)."""
    fields = {f.name for f in dataclasses.fields(kind)}
    if set(changes.__annotations__) != fields or set(rules) != fields:
        raise RuntimeError(f"{changes.__name__} and the rules must name exactly the fields of {kind.__name__}")


_check_changes_match(GuildSettings, GuildSettingsChanges, GUILD_RULES)
_check_changes_match(UserPrefs, UserPrefsChanges, USER_RULES)


@dataclass(frozen=True, slots=True)
class OwnerState:
    """What the bot's owner decided bot-wide: blocked users and servers, engines switched off."""

    blocked_users: frozenset[int] = frozenset()
    blocked_guilds: frozenset[int] = frozenset()
    disabled_engines: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A server with a budget: its budgets (None: none) and what it used of them today and this month."""

    guild_id: int
    daily_budget: int | None
    monthly_budget: int | None
    today: int
    month: int

    @property
    def fullness(self) -> float:
        """The larger share of a budget used (1.0 = spent)."""
        shares = [used / budget for used, budget in ((self.today, self.daily_budget),
                                                      (self.month, self.monthly_budget)) if budget]
        return max(shares, default=0.0)
