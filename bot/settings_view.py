"""Server settings in words: the ``/settings show`` sections and the "what changed" lines of every reply.

Pure functions of :class:`GuildSettings` and the bot's own :class:`Settings` (which fill in "bot default"),
so the wording is tested without Discord. Channels and roles render as mentions, which Discord shows as names
and which never ping (the bot disables all mentions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from babel.numbers import format_decimal

from bot.config import Settings
from bot.i18n import ENGLISH, N_, babel_locale, surface_text, translate, translate_plural
from bot.setting_choices import CodeMode, EmojiMode, HoldMode, LinkMode, NameMode, SayName
from bot.speech.capabilities import EndpointCapabilities
from bot.storage import GuildSettings, Usage
from bot.storage.schema import FORGOTTEN_USER

#: Read channels shown by name before "and N more" (an embed field holds 1024 characters).
MAX_CHANNELS_SHOWN = 20

#: How each choice reads in ``/settings show`` (catalogue message ids, translated when shown).
_SAY_NAME_WORDS = {
    SayName.ON_CHANGE: N_("when the speaker changes"), SayName.ALWAYS: N_("always"), SayName.NEVER: N_("never"),
}
_NAME_MODE_WORDS = {
    NameMode.DISPLAY: N_("display name"), NameMode.NICKNAME: N_("server nickname"),
    NameMode.USERNAME: N_("username"),
}
_EMOJI_WORDS = {EmojiMode.NAME: N_("read their names"), EmojiMode.SKIP: N_("skip")}
_LINK_WORDS = {LinkMode.DOMAIN: N_("say the domain"), LinkMode.SKIP: N_("skip")}
_CODE_WORDS = {CodeMode.READ: N_("read"), CodeMode.SKIP: N_("skip")}
_HOLD_MODE_WORDS = {
    HoldMode.EARLY: N_("early (speech requested during the hold, played when it ends)"),
    HoldMode.STRICT: N_("strict (nothing sent to the speech service before the hold ends)"),
}


def _on_off(language: str) -> Callable[[bool], str]:
    return lambda value: translate(language, "on") if value else translate(language, "off")


def _choice(language: str, words: dict[Any, str]) -> Callable[[str], str]:
    return lambda value: translate(language, words[value])


def _channels(language: str) -> Callable[[tuple[int, ...]], str]:
    def render(ids: tuple[int, ...]) -> str:
        if not ids:
            return translate(language, "none (read-aloud is off)")
        shown = " ".join(f"<#{channel}>" for channel in ids[:MAX_CHANNELS_SHOWN])
        if len(ids) <= MAX_CHANNELS_SHOWN:
            return shown
        return translate(language, "{channels} and {count} more", channels=shown, count=len(ids) - MAX_CHANNELS_SHOWN)
    return render


def _role(language: str) -> Callable[[int | None], str]:
    return lambda role_id: translate(language, "none") if role_id is None else f"<@&{role_id}>"


def _short(value: float) -> str:
    """A number as the English replies always wrote it (1.5, 300): no grouping, no trailing zeros."""
    return f"{value:g}"


def _decimal(language: str, value: float) -> str:
    """A small number (a speed, a hold) in the language's own notation (1,5 in German), as before in English."""
    return _short(value) if language == ENGLISH else format_decimal(value, locale=babel_locale(language))


def _bot_default(language: str, default: str) -> str:
    return translate(language, "bot default ({default})", default=default)


def _seconds(language: str, default: float) -> Callable[[int | None], str]:
    return lambda value: (_bot_default(language, translate(language, "{seconds} s", seconds=_short(default)))
                          if value is None else translate(language, "{seconds} s", seconds=str(value)))


def language_name(language: str) -> str:
    """A language by its own name, with its code: "日本語 (ja)", "English (en)" (CLDR names, from Babel)."""
    name = babel_locale(language).display_name if language != ENGLISH else "English"
    return f"{name} ({language})"


def _hold(language: str, default: float) -> Callable[[float | None], str]:
    def render(value: float | None) -> str:
        if value is None:
            return _bot_default(language, translate(language, "{seconds} s", seconds=_decimal(language, default)))
        return translate(language, "{seconds} s", seconds=_decimal(language, value))
    return render


def _no_limit(language: str, value: int | None, render: Callable[[int], str]) -> str:
    return translate(language, "no limit") if value is None else render(value)


def _formatters(bot: Settings, language: str = ENGLISH) -> dict[str, tuple[str, Callable[[Any], str]]]:
    """Field name → (label's message id, how to show its value in ``language``); each shows the type of its field
    of :class:`GuildSettings`. :func:`label` translates the label."""

    def voice(v: str) -> str:
        if not v:
            return _bot_default(language, bot.default_voice)
        if v in bot.speech_voices:
            return v
        return translate(language, "{voice} (not offered now: bot default, {default}, used)", voice=v,
                         default=bot.default_voice)

    def speed(v: float) -> str:
        if v in bot.speed_range:
            return f"{_decimal(language, v)}×"
        return translate(language, "{speed}× (more than this voice engine can do: 1× used)",
                         speed=_decimal(language, v))

    def characters(v: int | None) -> str:
        return _no_limit(language, v, lambda n: translate(language, "{count} characters", count=n))

    def per_minute(v: int | None) -> str:
        return _no_limit(language, v, lambda n: translate(language, "{count} characters per minute", count=n))

    on_off = _on_off(language)
    return {
        "default_voice": (N_("Default voice"), voice),
        "default_speed": (N_("Default speed"), speed),
        "default_format": (N_("Default format"), lambda v: v or _bot_default(language, bot.default_format)),
        "default_instructions": (N_("Default instructions"),
                                 lambda v: f"“{v}”" if v else translate(language, "none")),
        # the word the member's client shows among the option's choices
        "speak_output": (N_("/speak output"), lambda v: surface_text(language, "choice", str(v)) or str(v)),
        "read_channel_ids": (N_("Read channels"), _channels(language)),
        "autojoin": (N_("Auto-join"), on_off),
        "skip_bots": (N_("Skip bots"), on_off),
        "require_author_in_voice": (N_("Author must be in voice"), on_off),
        "optout_prefix": (N_("Opt-out prefix"), lambda v: f"`{v}`" if v else translate(language, "none")),
        "max_message_chars": (N_("Message length cap"), characters),
        "max_repeat_chars": (N_("Repeated-character cap"), str),
        "emoji_mode": (N_("Emoji"), _choice(language, _EMOJI_WORDS)),
        "link_mode": (N_("Links"), _choice(language, _LINK_WORDS)),
        "code_mode": (N_("Code"), _choice(language, _CODE_WORDS)),
        "backlog_speedup": (N_("Backlog speed-up"), lambda v: (
            translate(language, "off") if v == 1
            else translate(language, "up to {speed}×", speed=_decimal(language, v)))),
        "hold_seconds": (N_("Moderation hold"), _hold(language, bot.read_hold)),
        "hold_mode": (N_("Hold mode"), _choice(language, _HOLD_MODE_WORDS)),
        "language": (N_("Spoken language"), language_name),
        "say_name": (N_("Say who is speaking"), _choice(language, _SAY_NAME_WORDS)),
        "name_repeat_window": (N_("Name repeat window"),
                               lambda v: translate(language, "{seconds} s", seconds=str(v))),
        "name_mode": (N_("Name used"), _choice(language, _NAME_MODE_WORDS)),
        "idle_timeout": (N_("Idle timeout"), _seconds(language, bot.voice_idle_timeout)),
        "alone_timeout": (N_("Alone timeout"), _seconds(language, bot.voice_alone_timeout)),
        "announce_joins": (N_("Join/leave announcements"), on_off),
        "required_role_id": (N_("Required role"), _role(language)),
        "deny_role_id": (N_("Denied role"), _role(language)),
        "moderator_role_id": (N_("Moderator role"), _role(language)),
        "daily_char_budget": (N_("Daily budget"), characters),
        "monthly_char_budget": (N_("Monthly budget"), characters),
        "user_chars_per_minute": (N_("Per-member rate"), per_minute),
        "distinct_voices": (N_("Distinct voices"), lambda v: (
            translate(language, "on: members who chose no voice each get their own") if v
            else translate(language, "off: they get the default voice"))),
    }


#: ``/settings show`` sections (catalogue message ids), each a list of field names.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        N_("Speaking defaults"),
        ("default_voice", "distinct_voices", "default_speed", "default_format", "default_instructions", "speak_output"),
    ),
    (
        N_("Read-aloud"),
        (
            "read_channel_ids", "autojoin", "skip_bots", "require_author_in_voice", "optout_prefix",
            "max_message_chars", "max_repeat_chars", "emoji_mode", "link_mode", "code_mode", "backlog_speedup",
            "hold_seconds", "hold_mode", "language",
        ),
    ),
    (N_("Names"), ("say_name", "name_repeat_window", "name_mode")),
    (N_("Voice channel"), ("idle_timeout", "alone_timeout", "announce_joins")),
    (N_("Access"), ("required_role_id", "deny_role_id", "moderator_role_id")),
    (N_("Limits"), ("daily_char_budget", "monthly_char_budget", "user_chars_per_minute")),
)


def label(bot: Settings, field: str, language: str = ENGLISH) -> str:
    return translate(language, _formatters(bot)[field][0])


def labels(bot: Settings, language: str = ENGLISH) -> dict[str, str]:
    """Field name → label in ``language``, for every setting (the choices of ``/settings reset``)."""
    return {field: translate(language, name) for field, (name, _) in _formatters(bot).items()}


def show_value(bot: Settings, guild: GuildSettings, field: str, language: str = ENGLISH) -> str:
    _, render = _formatters(bot, language)[field]
    return render(getattr(guild, field))


def render_sections(bot: Settings, guild: GuildSettings, language: str = ENGLISH) -> list[tuple[str, str]]:
    """(section title, one "**Label:** value" line per setting) for every section, in ``language``."""
    return [
        (translate(language, title), "\n".join(
            translate(language, "**{label}:** {value}", label=label(bot, f, language),
                      value=show_value(bot, guild, f, language))
            for f in fields))
        for title, fields in SECTIONS
    ]


def render_capabilities(bot: Settings, capabilities: EndpointCapabilities, language: str = ENGLISH) -> str:
    """What the bot's speech server can do (the same for every Discord server), one line per fact, in
    ``language``: moderators see why a voice or a speed does not do what its name says."""
    if bot.engine_name != "openai":
        speeds = bot.speed_range.in_words(language)
        if bot.engine_name == "local":
            return translate(language, "the offline voice: {count} voices, speeds from {speeds}",
                             count=len(bot.speech_voices), speeds=speeds)
        return translate(language, "the Realtime API: {count} voices, speeds from {speeds}",
                         count=len(bot.speech_voices), speeds=speeds)
    return "\n".join(f"• {line}" for line in capabilities.describe(language))


def describe_changes(
    bot: Settings, before: GuildSettings, after: GuildSettings, fields: Iterable[str], language: str = ENGLISH,
) -> list[str]:
    """One line per requested setting, in ``language``: "Label: old → new", or "Label: already value" when it did
    not change."""
    lines = []
    for field in fields:
        old, new = show_value(bot, before, field, language), show_value(bot, after, field, language)
        name = label(bot, field, language)
        lines.append(translate(language, "{label}: {old} → {new}", label=name, old=old, new=new) if old != new
                     else translate(language, "{label}: already {value}", label=name, value=new))
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
