"""The plain data the read-aloud pipeline works on.

The Discord adapter turns a ``discord.Message`` into a :class:`MessageInput` (ids already looked up into names),
so everything under ``bot.text`` stays pure and testable without discord.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

EmojiMode = Literal["name", "skip"]
LinkMode = Literal["domain", "skip"]
CodeMode = Literal["read", "skip"]

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
    (code blocks are always "code block"). ``max_chars``: cap on the spoken text of one message, " and more"
    included. ``max_repeat``: longest run of one character, short unit or word that is kept.
    """

    emoji_mode: EmojiMode = "name"
    link_mode: LinkMode = "domain"
    code_mode: CodeMode = "read"
    max_chars: int = 300
    max_repeat: int = 3

    def __post_init__(self) -> None:
        if self.emoji_mode not in ("name", "skip"):
            raise ValueError(f"emoji_mode must be 'name' or 'skip', not {self.emoji_mode!r}")
        if self.link_mode not in ("domain", "skip"):
            raise ValueError(f"link_mode must be 'domain' or 'skip', not {self.link_mode!r}")
        if self.code_mode not in ("read", "skip"):
            raise ValueError(f"code_mode must be 'read' or 'skip', not {self.code_mode!r}")
        if self.max_chars < MIN_MAX_CHARS:
            raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, not {self.max_chars}")
        if self.max_repeat < 1:
            raise ValueError(f"max_repeat must be at least 1, not {self.max_repeat}")
