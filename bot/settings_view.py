"""Server settings in words: the ``/settings show`` sections and the "what changed" lines of every reply.

Pure functions of :class:`GuildSettings` and the bot's own :class:`Settings` (which fill in "bot default"),
so the wording is tested without Discord. Channels and roles render as mentions, which Discord shows as names
and which never ping (the bot disables all mentions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bot.config import Settings
from bot.i18n import ENGLISH, babel_locale, translate, translate_plural
from bot.setting_choices import CodeMode, EmojiMode, HoldMode, LinkMode, NameMode, SayName
from bot.speech.capabilities import EndpointCapabilities
from bot.storage import GuildSettings, Usage
from bot.storage.schema import FORGOTTEN_USER

#: Read channels shown by name before "and N more" (an embed field holds 1024 characters).
MAX_CHANNELS_SHOWN = 20

#: How each choice reads in ``/settings show``.
_SAY_NAME_WORDS = {SayName.ON_CHANGE: "when the speaker changes", SayName.ALWAYS: "always", SayName.NEVER: "never"}
_NAME_MODE_WORDS = {
    NameMode.DISPLAY: "display name", NameMode.NICKNAME: "server nickname", NameMode.USERNAME: "username",
}
_EMOJI_WORDS = {EmojiMode.NAME: "read their names", EmojiMode.SKIP: "skip"}
_LINK_WORDS = {LinkMode.DOMAIN: "say the domain", LinkMode.SKIP: "skip"}
_CODE_WORDS = {CodeMode.READ: "read", CodeMode.SKIP: "skip"}
_HOLD_MODE_WORDS = {
    HoldMode.EARLY: "early (speech requested during the hold, played when it ends)",
    HoldMode.STRICT: "strict (nothing sent to the speech service before the hold ends)",
}


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _choice(words: dict[Any, str]) -> Callable[[str], str]:
    return lambda value: words[value]


def _channels(ids: tuple[int, ...]) -> str:
    if not ids:
        return "none (read-aloud is off)"
    shown = " ".join(f"<#{channel}>" for channel in ids[:MAX_CHANNELS_SHOWN])
    return shown + (f" and {len(ids) - MAX_CHANNELS_SHOWN} more" if len(ids) > MAX_CHANNELS_SHOWN else "")


def _role(role_id: int | None) -> str:
    return "none" if role_id is None else f"<@&{role_id}>"


def _limit(unit: str) -> Callable[[int | None], str]:
    return lambda value: "no limit" if value is None else f"{value:,} {unit}"


def _seconds(default: float) -> Callable[[int | None], str]:
    return lambda value: f"bot default ({default:g} s)" if value is None else f"{value} s"


def language_name(language: str) -> str:
    """A language by its own name, with its code: "日本語 (ja)", "English (en)" (CLDR names, from Babel)."""
    name = babel_locale(language).display_name if language != ENGLISH else "English"
    return f"{name} ({language})"


def _hold(default: float) -> Callable[[float | None], str]:
    return lambda value: f"bot default ({default:g} s)" if value is None else f"{value:g} s"


def _formatters(bot: Settings) -> dict[str, tuple[str, Callable[[Any], str]]]:
    """Field name → (label, how to show its value); each shows the type of its field of :class:`GuildSettings`."""
    return {
        "default_voice": ("Default voice", lambda v: (
            f"bot default ({bot.default_voice})" if not v
            else v if v in bot.speech_voices else f"{v} (not offered now: bot default, {bot.default_voice}, used)"
        )),
        "default_speed": ("Default speed", lambda v: (
            f"{v:g}×" if v in bot.speed_range else f"{v:g}× (more than this voice engine can do: 1× used)"
        )),
        "default_format": ("Default format", lambda v: v or f"bot default ({bot.default_format})"),
        "default_instructions": ("Default instructions", lambda v: f"“{v}”" if v else "none"),
        "speak_output": ("/speak output", str),
        "read_channel_ids": ("Read channels", _channels),
        "autojoin": ("Auto-join", _on_off),
        "skip_bots": ("Skip bots", _on_off),
        "require_author_in_voice": ("Author must be in voice", _on_off),
        "optout_prefix": ("Opt-out prefix", lambda v: f"`{v}`" if v else "none"),
        "max_message_chars": ("Message length cap", _limit("characters")),
        "max_repeat_chars": ("Repeated-character cap", str),
        "emoji_mode": ("Emoji", _choice(_EMOJI_WORDS)),
        "link_mode": ("Links", _choice(_LINK_WORDS)),
        "code_mode": ("Code", _choice(_CODE_WORDS)),
        "backlog_speedup": ("Backlog speed-up", lambda v: "off" if v == 1 else f"up to {v:g}×"),
        "hold_seconds": ("Moderation hold", _hold(bot.read_hold)),
        "hold_mode": ("Hold mode", _choice(_HOLD_MODE_WORDS)),
        "language": ("Spoken language", language_name),
        "say_name": ("Say who is speaking", _choice(_SAY_NAME_WORDS)),
        "name_repeat_window": ("Name repeat window", lambda v: f"{v} s"),
        "name_mode": ("Name used", _choice(_NAME_MODE_WORDS)),
        "idle_timeout": ("Idle timeout", _seconds(bot.voice_idle_timeout)),
        "alone_timeout": ("Alone timeout", _seconds(bot.voice_alone_timeout)),
        "announce_joins": ("Join/leave announcements", _on_off),
        "required_role_id": ("Required role", _role),
        "deny_role_id": ("Denied role", _role),
        "moderator_role_id": ("Moderator role", _role),
        "daily_char_budget": ("Daily budget", _limit("characters")),
        "monthly_char_budget": ("Monthly budget", _limit("characters")),
        "user_chars_per_minute": ("Per-member rate", _limit("characters per minute")),
        "distinct_voices": ("Distinct voices", lambda v: (
            "on: members who chose no voice each get their own" if v else "off: they get the default voice")),
    }


#: ``/settings show`` sections, each a list of field names.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Speaking defaults",
        ("default_voice", "distinct_voices", "default_speed", "default_format", "default_instructions", "speak_output"),
    ),
    (
        "Read-aloud",
        (
            "read_channel_ids", "autojoin", "skip_bots", "require_author_in_voice", "optout_prefix",
            "max_message_chars", "max_repeat_chars", "emoji_mode", "link_mode", "code_mode", "backlog_speedup",
            "hold_seconds", "hold_mode", "language",
        ),
    ),
    ("Names", ("say_name", "name_repeat_window", "name_mode")),
    ("Voice channel", ("idle_timeout", "alone_timeout", "announce_joins")),
    ("Access", ("required_role_id", "deny_role_id", "moderator_role_id")),
    ("Limits", ("daily_char_budget", "monthly_char_budget", "user_chars_per_minute")),
)


def label(bot: Settings, field: str) -> str:
    return _formatters(bot)[field][0]


def labels(bot: Settings) -> dict[str, str]:
    """Field name → label, for every setting (the choices of ``/settings reset``)."""
    return {field: name for field, (name, _) in _formatters(bot).items()}


def show_value(bot: Settings, guild: GuildSettings, field: str) -> str:
    _, render = _formatters(bot)[field]
    return render(getattr(guild, field))


def render_sections(bot: Settings, guild: GuildSettings) -> list[tuple[str, str]]:
    """(section title, one "**Label:** value" line per setting) for every section."""
    return [
        (title, "\n".join(f"**{label(bot, f)}:** {show_value(bot, guild, f)}" for f in fields))
        for title, fields in SECTIONS
    ]


def render_capabilities(bot: Settings, capabilities: EndpointCapabilities) -> str:
    """What the bot's speech server can do (the same for every Discord server), one line per fact: moderators see
    why a voice or a speed does not do what its name says."""
    if bot.engine_name != "openai":
        engine = "the offline voice" if bot.engine_name == "local" else "the Realtime API"
        return f"{engine}: {len(bot.speech_voices)} voices, speeds from {bot.speed_range}"
    return "\n".join(f"• {line}" for line in capabilities.describe())


def describe_changes(bot: Settings, before: GuildSettings, after: GuildSettings, fields: Iterable[str]) -> list[str]:
    """One line per requested setting: "Label: old → new", or "Label: already value" when it did not change."""
    lines = []
    for field in fields:
        old, new = show_value(bot, before, field), show_value(bot, after, field)
        lines.append(f"{label(bot, field)}: {old} → {new}" if old != new else f"{label(bot, field)}: already {new}")
    return lines


def _characters(language: str, count: int) -> str:
    return translate_plural(language, "{count} character", "{count} characters", count)


def _spent(language: str, usage: Usage, budget: int | None) -> str:
    characters = _characters(language, usage.characters)
    requests = translate_plural(language, "{count} request", "{count} requests", usage.requests)
    if budget is None:
        return translate(language, "{characters} in {requests} (no budget)", characters=characters, requests=requests)
    return translate(language, "{characters} in {requests} of a {budget} budget ({left} left)",
                     characters=characters, requests=requests, budget=budget,
                     left=max(budget - usage.characters, 0))


def render_usage(
    guild: GuildSettings,
    today: Usage,
    month: Usage,
    *,
    mine: Usage,
    per_member: list[tuple[int, Usage]] | None = None,
    language: str = ENGLISH,
) -> str:
    """``/usage``: the server's spend against its budgets, the caller's own, and per member for moderators, in
    the caller's ``language``."""
    lines = [
        translate(language, "**Speech usage in this server** (days and months in UTC)"),
        translate(language, "Today: {spent}", spent=_spent(language, today, guild.daily_char_budget)),
        translate(language, "This month: {spent}", spent=_spent(language, month, guild.monthly_char_budget)),
        translate(language, "You this month: {characters}", characters=_characters(language, mine.characters)),
    ]
    if month.fallback_characters:
        if mine.fallback_characters:
            lines.append(translate(
                language,
                "Said by the offline voice while the speech service could not (not counted against budgets): "
                "today {today}, this month {month} characters, yours {mine}",
                today=today.fallback_characters, month=month.fallback_characters, mine=mine.fallback_characters,
            ))
        else:
            lines.append(translate(
                language,
                "Said by the offline voice while the speech service could not (not counted against budgets): "
                "today {today}, this month {month} characters",
                today=today.fallback_characters, month=month.fallback_characters,
            ))
    if guild.user_chars_per_minute is not None:
        lines.append(translate_plural(language, "Per-member rate: {count} character per minute",
                                      "Per-member rate: {count} characters per minute", guild.user_chars_per_minute))
    if per_member is not None:
        lines.append(translate(language, "**Per member this month:**") if per_member
                     else translate(language, "Nobody has used speech this month."))
        for user_id, used in per_member:
            who = translate(language, "forgotten users") if user_id == FORGOTTEN_USER else f"<@{user_id}>"
            characters = _characters(language, used.characters)
            requests = translate_plural(language, "{count} request", "{count} requests", used.requests)
            if used.fallback_characters:
                lines.append(translate(language, "• {who}: {characters} ({requests}), {offline} offline", who=who,
                                       characters=characters, requests=requests, offline=used.fallback_characters))
            else:
                lines.append(translate(language, "• {who}: {characters} ({requests})", who=who,
                                       characters=characters, requests=requests))
    return "\n".join(lines)
