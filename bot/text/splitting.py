"""Length limits: a per-message cap with " and more", and splitting long texts into speech requests.

The cap cuts at a word boundary and appends " and more"; the result, suffix included, never exceeds the cap.
:func:`split_for_speech` cuts a text longer than one request (4096 characters, the speech API's limit) at the
last sentence end that fits, else the last clause break (comma, semicolon, colon, dash), else the last space,
else hard at the limit (a single enormous "word"). CJK full stops and commas count without a following space.
"""

from __future__ import annotations

import re

MORE = " and more"
#: The speech endpoint's input limit.
REQUEST_LIMIT = 4096

# A sentence end followed by a space, or a CJK full stop (CJK text has no spaces).
_SENTENCE_BREAK = re.compile(r"""[.!?…]+[)"'\]”’」』]*(?=\s)|[。！？]+[」』）]*""")
_CLAUSE_BREAK = re.compile(r"[,;:、，；：]+(?=\s)|[、，；]+|\s[-–—]+(?=\s)")
_SPACE = re.compile(r"\s+")
_TRAILING = " ,.;:!?-–—…"


def truncate(text: str, limit: int, more: str = MORE) -> str:
    """``text`` if it fits in ``limit`` characters, else its first words followed by ``more`` (" and more", or
    its translation)."""
    if len(text) <= limit:
        return text
    room = limit - len(more)
    if room < 1:  # no room for " and more": whole words if any fit, else a hard cut
        cut = text.rfind(" ", 0, limit + 1)
        return (text[:cut] if cut > 0 else text[:limit]).rstrip()
    cut = text.rfind(" ", 0, room + 1)
    head = (text[:cut] if cut > 0 else text[:room]).rstrip(_TRAILING)
    if not head:  # the room holds only punctuation, which cleaning would drop the next time: no head at all
        head = text[:room].rstrip(_TRAILING + " ")
    return head + more if head else more.lstrip()


def split_for_speech(text: str, limit: int = REQUEST_LIMIT) -> list[str]:
    """Cut ``text`` into non-empty pieces of at most ``limit`` characters, in order, words kept whole if possible.

    Whitespace at the cuts is dropped; nothing else is lost. An empty or blank text gives no pieces.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = (
            _last_end(_SENTENCE_BREAK, window, limit)
            or _last_end(_CLAUSE_BREAK, window, limit)
            or _last_start(_SPACE, window)
            or limit
        )
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _last_end(pattern: re.Pattern[str], window: str, limit: int) -> int:
    """End of the last match ending within ``limit`` after some text (0 if none)."""
    best = 0
    for match in pattern.finditer(window):
        if match.end() <= limit and window[: match.start()].strip():
            best = match.end()
    return best


def _last_start(pattern: re.Pattern[str], window: str) -> int:
    """Start of the last whitespace run after some text (0 if none)."""
    best = 0
    for match in pattern.finditer(window):
        if match.start() > 0:
            best = match.start()
    return best
