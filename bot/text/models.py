"""The plain data the read-aloud pipeline works on.

The Discord adapter turns a ``discord.Message`` into a :class:`MessageInput` (ids already looked up into names),
so everything under ``bot.text`` stays pure and testable without discord.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.i18n import ENGLISH
from bot.setting_choices import CodeMode, EmojiMode, LinkMode

#: Smallest accepted ``max_chars`` (the settings store allows 1; below about 20 there is no room for
#: " and more" and the text is simply cut).
MIN_MAX_CHARS = 1


@dataclass(frozen=True)
class MessageInput:
    """One Discord message, as plain data.

    ``mentions``, ``role_mentions`` and ``channel_mentions`` map ids (as found in ``<@id>``, ``<@&id>``,
    ``<#id>``) to display names; ids missing from them are read as "someone", "a role", "a channel".
    ``attachments`` are ``(filename, content_type)`` pairs (``content_type`` may be None).
    ``created_at`` (timezone-aware) lets relative timestamps (``<t:…:R>``) be read as "in 3 days".
    Instances are not hashable when given dict fields; they are never used as keys.
    """

    content: str = ""
    author_name: str = ""
    mentions: Mapping[int, str] = field(default_factory=dict)
    role_mentions: Mapping[int, str] = field(default_factory=dict)
    channel_mentions: Mapping[int, str] = field(default_factory=dict)
    attachments: Sequence[tuple[str, str | None]] = ()
    is_voice_message: bool = False
    sticker_names: Sequence[str] = ()
    has_poll: bool = False
    poll_question: str | None = None
    reply_to_author: str | None = None
    is_forward: bool = False
    embeds: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class CleaningOptions:
    """Per-server reading settings.

    ``emoji_mode``: "name" reads emoji by name, "skip" drops them. ``link_mode``: "domain" reads
    "a link to example.com", "skip" drops links. ``code_mode``: "read" reads inline code as text, "skip" drops it
    (code blocks are always "code block", in ``language``). ``max_chars``: cap on the spoken text of one message,
    " and more"
    included. ``max_repeat``: longest run of one character, short unit or word that is kept.
    """

    emoji_mode: EmojiMode = EmojiMode.NAME
    link_mode: LinkMode = LinkMode.DOMAIN
    code_mode: CodeMode = CodeMode.READ
    max_chars: int = 300
    max_repeat: int = 3
    #: The language the bot speaks around messages (``/settings language``): "Alice said", link and
    #: attachment words, emoji names. A Discord locale code of ``bot.i18n``; the message text itself is untouched.
    language: str = ENGLISH

    def __post_init__(self) -> None:
        for name, kind in (("emoji_mode", EmojiMode), ("link_mode", LinkMode), ("code_mode", CodeMode)):
            value = getattr(self, name)
            if value not in tuple(kind):  # a plain string naming a member is taken as that member
                allowed = " or ".join(repr(member.value) for member in kind)
                raise ValueError(f"{name} must be {allowed}, not {value!r}")
            object.__setattr__(self, name, kind(value))
        if self.max_chars < MIN_MAX_CHARS:
            raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, not {self.max_chars}")
        if self.max_repeat < 1:
            raise ValueError(f"max_repeat must be at least 1, not {self.max_repeat}")
