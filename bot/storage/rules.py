"""The rules every stored setting follows, and the limits they enforce: one rule per setting, which checks and
normalizes a value or raises :class:`~bot.storage.errors.SettingsError` naming the setting.

The rules live here rather than in the commands so that every writer (slash commands, imports, a future
dashboard) gets the same limits and the same user-facing messages. Values read back from the database go
through the same rules (once per cache period), so a stored value that a newer rule forbids fails loudly; a
change that narrows a rule therefore ships with a migration that fixes old rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeGuard

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat
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
from bot.speech.models import MAX_INPUT_CHARS, MAX_INSTRUCTIONS_CHARS, MAX_SPEED, MIN_SPEED
from bot.storage.errors import SettingsError

#: Discord IDs are stored as signed 64-bit integers (every real snowflake fits).
MAX_ID = 2**63 - 1
MAX_VOICE_CHARS = 100
MAX_SPOKEN_NAME_CHARS = 50
MAX_READ_CHANNELS = 50
MAX_BUDGET_CHARS = 10**9
#: The longest moderation hold a server may set, in seconds.
MAX_HOLD_SECONDS = 5.0

Rule = Callable[[str, object], object]


def validated(rules: Mapping[str, Rule], changes: Mapping[str, object]) -> dict[str, Any]:
    """``changes`` checked and normalized by ``rules``; :class:`SettingsError` for an unknown name or a bad value."""
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
        if value is None or is_id(value):
            return value
        raise SettingsError(name, f"{label} must be a role ID, or none.")

    return check


def _channels(name: str, value: object) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise SettingsError(name, "The read channels must be a list of channel IDs.")
    ids = sorted(set(value))
    if not all(is_id(v) for v in ids):
        raise SettingsError(name, "The read channels must be a list of channel IDs.")
    if len(ids) > MAX_READ_CHANNELS:
        raise SettingsError(name, f"At most {MAX_READ_CHANNELS} channels can be read aloud.")
    return tuple(ids)


def is_id(value: object) -> TypeGuard[int]:
    """A Discord ID as stored: a positive integer that fits a signed 64-bit column."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


GUILD_RULES: dict[str, Rule] = {
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
    "hold_mode": _choice("The hold mode", HoldMode),
    "hold_seconds": _number("The moderation hold", 0.0, MAX_HOLD_SECONDS, optional=True),
    "language": _choice("The language", SpeechLanguage),
    "daily_char_budget": _whole("The daily budget", 1, MAX_BUDGET_CHARS, "characters", optional=True),
    "monthly_char_budget": _whole("The monthly budget", 1, MAX_BUDGET_CHARS, "characters", optional=True),
    "user_chars_per_minute": _whole("The per-user rate", 1, MAX_BUDGET_CHARS, "characters", optional=True),
    "distinct_voices": _switch("Distinct voices"),
}

USER_RULES: dict[str, Rule] = {
    "voice": _text("The voice", MAX_VOICE_CHARS),
    "speed": _number("Speed", MIN_SPEED, MAX_SPEED, optional=True),
    "instructions": _text("The instructions", MAX_INSTRUCTIONS_CHARS, one_line=False),
    "spoken_name": _text("The spoken name", MAX_SPOKEN_NAME_CHARS),
}
