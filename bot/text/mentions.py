"""Discord's own markup to words: mentions, ``@everyone``/``@here``, slash-command mentions, timestamps.

User, role and channel mentions are read as the names the adapter looked up (already cleaned by the caller);
unknown ids read "someone", "a role", "a channel". ``</config set:123>`` reads "slash config set". A timestamp
``<t:unix:style>`` reads in UTC words: ``t`` "14:05 UTC", ``T`` with seconds, ``d``/``D`` "March 5, 2024",
``f`` (default) "March 5, 2024 at 14:05 UTC", ``F`` with the weekday, and ``R`` "in 3 days"/"2 hours ago" when
the message time is known (otherwise like ``f``). Out-of-range timestamps read "a time".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from babel import Locale
from babel.dates import format_date, format_time, format_timedelta

from bot.i18n import ENGLISH, babel_locale, translate

#: ``<@id>``, ``<@!id>`` (user), ``<@&id>`` (role), ``<#id>`` (channel).
MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")
SLASH_COMMAND = re.compile(r"</([-\w]+(?: [-\w]+){0,2}):(\d+)>")
TIMESTAMP = re.compile(r"<t:(-?\d{1,20})(?::([tTdDfFR]))?>")
# no trailing word boundary: "@everyone0" is read "everyone0", so cutting it short cannot make a new "@everyone"
EVERYONE = re.compile(r"(?<!\w)@(everyone|here)", re.IGNORECASE)

#: Looks up a mention: (kind, id) → spoken name, kind being "user", "role" or "channel".
Resolver = Callable[[str, int], str]

_KINDS = {"@": "user", "@!": "user", "@&": "role", "#": "channel"}
_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))


def replace_mentions(
    text: str, resolve: Resolver, created_at: datetime | None = None, language: str = ENGLISH
) -> str:
    """Replace every Discord mention, slash-command mention and timestamp in ``text`` by words."""
    text = MENTION.sub(lambda m: f" {resolve(_KINDS[m.group(1)], int(m.group(2)))} ", text)
    # TRANSLATORS: a slash command mentioned in a message, "</config set:123>" → "slash config set".
    slash = translate(language, "slash")
    text = SLASH_COMMAND.sub(lambda m: f" {slash} " + re.sub(r"[-_]+", " ", m.group(1)) + " ", text)
    text = TIMESTAMP.sub(
        lambda m: f" {speak_timestamp(int(m.group(1)), m.group(2) or 'f', created_at, language)} ", text
    )
    return EVERYONE.sub(lambda m: m.group(1).lower(), text)


def speak_timestamp(unix: int, style: str, now: datetime | None = None, language: str = ENGLISH) -> str:
    """A Discord timestamp in words (UTC), as described in the module docstring; in another language, CLDR's
    formats for it (Babel): "2024年3月5日 14:05 UTC", "vor 2 Stunden"."""
    try:
        when = datetime.fromtimestamp(unix, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return translate(language, "a time")
    if language != ENGLISH:
        return _localized(when, style, now, babel_locale(language))
    if style == "R" and now is not None:
        return _relative(when, now)
    date = f"{when:%B} {when.day}, {when.year}"
    clock = f"{when:%H:%M:%S}" if style == "T" else f"{when:%H:%M}"
    if style in ("t", "T"):
        return f"{clock} UTC"
    if style in ("d", "D"):
        return date
    if style == "F":
        return f"{when:%A}, {date} at {clock} UTC"
    return f"{date} at {clock} UTC"


def _localized(when: datetime, style: str, now: datetime | None, locale: Locale) -> str:
    if style == "R" and now is not None:
        now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        return format_timedelta(when - now, add_direction=True, locale=locale)
    clock = format_time(when, "medium" if style == "T" else "short", tzinfo=UTC, locale=locale) + " UTC"
    if style in ("t", "T"):
        return clock
    date = format_date(when, "full" if style == "F" else "long", locale=locale)
    return date if style in ("d", "D") else f"{date} {clock}"


def _relative(when: datetime, now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = int((when - now).total_seconds())
    for unit, size in _UNITS:
        count = abs(seconds) // size
        if count:
            amount = f"{count} {unit}" + ("s" if count > 1 else "")
            return f"in {amount}" if seconds > 0 else f"{amount} ago"
    return "now"
