"""How a synthesized file is presented in chat: its name and the caption that says who asked."""

from __future__ import annotations

import re

from bot.audio.formats import AudioFormat

QUOTE_CHARS = 120
_MARKDOWN = re.compile(r"([\\*_~`|\[\]])")


def audio_filename(fmt: AudioFormat) -> str:
    return f"speech.{fmt.extension}"


def speak_caption(requester_mention: str, text: str) -> str:
    """``🔊 <@id>: “short quote…”`` with markdown neutralised so the quote shows as written."""
    flat = " ".join(text.split())
    quote = flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1].rstrip() + "…"
    escaped = _MARKDOWN.sub(r"\\\1", quote)
    return f"🔊 {requester_mention}: “{escaped}”"


def format_size(num_bytes: int) -> str:
    if num_bytes >= 1024 * 1024:
        return f"{num_bytes / (1024 * 1024):.1f} MiB"
    return f"{num_bytes / 1024:.0f} KiB"
