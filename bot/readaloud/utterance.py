"""What read-aloud queues: a message (or an announcement) with everything needed to say it, decided when it
arrived, and the names a member goes by.

Plain data and pure functions, shared by the service that decides (:mod:`bot.readaloud.reader`) and the
per-guild reader that speaks (:mod:`bot.readaloud.guild_reader`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.setting_choices import NameMode, SayName
from bot.speech.models import MAX_INPUT_CHARS
from bot.storage import DictionaryEntry, GuildSettings
from bot.text import CleaningOptions, MessageInput, apply_dictionary, truncate

#: Builds the message from the author's spoken name and the server's name mode (for mentioned members and the
#: author replied to); the cog closes over the discord.Message.
InputBuilder = Callable[[str, NameMode], MessageInput]


@dataclass(frozen=True, slots=True)
class Names:
    """The names a member goes by; :func:`spoken_name` picks one according to the server's name mode."""

    display: str
    nickname: str | None
    username: str


def spoken_name(names: Names, mode: NameMode, chosen: str | None) -> str:
    """The user's own spoken name if they set one, else the name the server's mode asks for."""
    if chosen:
        return chosen
    if mode is NameMode.USERNAME:
        return names.username
    if mode is NameMode.NICKNAME:
        return names.nickname or names.display
    return names.display


@dataclass(frozen=True, slots=True)
class Utterance:
    """A queued message (or announcement, ``message`` None and ``text`` set) with how to say it."""

    message: MessageInput | None
    text: str | None
    options: CleaningOptions
    dictionary: tuple[DictionaryEntry, ...]
    voice: str
    speed: float
    instructions: str | None
    say_name: SayName
    name_window: float
    backlog_speedup: float
    hold: float = 1.0  # seconds the message is held (the server's setting, else the bot's READ_ALOUD_HOLD)
    early: bool = False  # synthesize during the hold (HoldMode.EARLY) rather than after it


def cleaning_options(settings: GuildSettings) -> CleaningOptions:
    return CleaningOptions(
        emoji_mode=settings.emoji_mode,
        link_mode=settings.link_mode,
        code_mode=settings.code_mode,
        max_chars=settings.max_message_chars,
        max_repeat=settings.max_repeat_chars,
        language=settings.language.value,
    )


def with_dictionary(text: str, dictionary: tuple[DictionaryEntry, ...]) -> str:
    """Cleaned text as it is sent: the server's dictionary applied, then cut to the speech request limit."""
    return truncate(apply_dictionary(text, dictionary), MAX_INPUT_CHARS).strip()
