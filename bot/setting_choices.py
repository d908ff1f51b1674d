"""The values of every choice a server or a member can make, each defined once.

Stored settings keep them as their strings (``bot.storage``), the text cleaner and read-aloud act on them
(``bot.text``, ``bot.readaloud``), the settings view words them and the cogs offer them as Discord choices: all of
them use these enums, so a value added or renamed here reaches every layer, with no parallel definitions to bridge.
Nothing is imported here, so every layer, the discord-free ones included, may depend on it.
"""

from __future__ import annotations

from enum import StrEnum


class SpeakOutput(StrEnum):
    """What ``/speak`` does with the audio."""

    FILE = "file"
    VOICE = "voice"
    BOTH = "both"
    VOICE_MESSAGE = "voice_message"  # Discord's native voice message (Ogg Opus, with a waveform)


class SayName(StrEnum):
    """When read-aloud says who wrote a message."""

    ALWAYS = "always"
    NEVER = "never"
    ON_CHANGE = "on_change"


class NameMode(StrEnum):
    """Which of a member's names read-aloud says."""

    DISPLAY = "display"
    NICKNAME = "nickname"
    USERNAME = "username"


class EmojiMode(StrEnum):
    """Emoji read by name, or skipped."""

    NAME = "name"
    SKIP = "skip"


class LinkMode(StrEnum):
    """Links read as their domain, or skipped."""

    DOMAIN = "domain"
    SKIP = "skip"


class CodeMode(StrEnum):
    """Inline code read as text, or skipped (code blocks are always "code block")."""

    READ = "read"
    SKIP = "skip"


class HoldMode(StrEnum):
    """What read-aloud does while a message waits out the server's moderation hold.

    ``EARLY``: its speech is requested at once and kept in memory; it plays when the hold ends (never before), and
    a message deleted during the hold is never played, but its text may already have reached the speech service.
    ``STRICT``: nothing about the message leaves the bot before the hold ends.
    """

    EARLY = "early"
    STRICT = "strict"


class SpeechLanguage(StrEnum):
    """The language the bot speaks around a server's messages (``/settings language``): Discord's locale codes
    of the languages ``bot.i18n`` has catalogues for, and English."""

    EN = "en"
    JA = "ja"
    KO = "ko"
    DE = "de"
    FR = "fr"
    ES = "es-ES"
    PT_BR = "pt-BR"
