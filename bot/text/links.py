"""Links to words: "a link to example.com", or nothing.

Recognised: ``http(s)://…`` anywhere, a bare ``www.…`` at the start of a word, ``<https://…>`` (the
no-embed form) and masked links ``[text](url)``, which read as their text. Only the host is spoken: lowercased,
without user info, port or ``www`` labels, at most its last three labels ("a link to example.co.uk"). Trailing
sentence punctuation is not part of a link, so "see https://x.com." keeps its full stop. A link to a Discord
message (``discord.com/channels/…``) reads "a link to a Discord message".
"""

from __future__ import annotations

import re

from bot.i18n import ENGLISH, translate
from bot.setting_choices import LinkMode

# "www." counts only at the start of a word and before a host character ("wwwww." is laughter, not a link).
_URL_START = r"(?:https?://|(?<![\w.@/-])www\.(?=[^\W_]))"
_URL_END = r"""[^\s<>.,;:!?'")\]}”’]"""
#: Any link; the part after the start is optional so that even a bare "https://" is consumed.
URL = re.compile(rf"{_URL_START}(?:[^\s<>]*{_URL_END})?", re.IGNORECASE)
#: What must never survive cleaning: the start of a link.
URL_START = re.compile(_URL_START, re.IGNORECASE)
ANGLE_URL = re.compile(rf"<({_URL_START}[^\s<>]*)>", re.IGNORECASE)
MASKED_LINK = re.compile(rf"\[([^\[\]\n]*)\]\(\s*<?{_URL_START}[^\s()<>]*>?\s*\)", re.IGNORECASE)

_MESSAGE_LINK = re.compile(
    r"(?:https?://)?(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/\d+/\d+", re.IGNORECASE
)
_SCHEME = re.compile(r"^(?:https?://)?", re.IGNORECASE)
_HOST_JUNK = re.compile(r"[^\w.-]|_")
_MAX_LABELS = 3


def link_host(url: str) -> str:
    """The speakable host of ``url``: "https://user@www.Example.com:8080/x" → "example.com" ("" if none)."""
    rest = _SCHEME.sub("", url, count=1)
    host = re.split(r"[/?#\\]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = host.split(":", 1)[0] if not host.startswith("[") else ""
    labels = [label.strip("-") for label in _HOST_JUNK.sub("", host.lower()).split(".")]
    labels = [label for label in labels if label and label != "www"]
    return ".".join(labels[-_MAX_LABELS:])


def speak_link(url: str, mode: LinkMode, language: str = ENGLISH) -> str:
    """The words for one link in ``language`` (padded with spaces so they never glue to neighbours)."""
    if mode == LinkMode.SKIP:
        return " "
    if _MESSAGE_LINK.match(url):
        return " " + translate(language, "a link to a Discord message") + " "
    host = link_host(url)
    words = translate(language, "a link to {host}", host=host) if host else translate(language, "a link")
    return f" {words} "


def replace_links(text: str, mode: LinkMode, language: str = ENGLISH) -> str:
    """Masked links become their text; every other link becomes :func:`speak_link`."""
    text = MASKED_LINK.sub(lambda m: f" {m.group(1)} ", text)
    text = ANGLE_URL.sub(lambda m: speak_link(m.group(1), mode, language), text)
    return URL.sub(lambda m: speak_link(m.group(0), mode, language), text)
