"""Short spoken descriptions of what a message carries besides its text.

Attachments are counted by kind: "an image", "2 images and a file", "a voice message". The kind comes from the
content type, else from the file extension. Stickers read "a sticker: wave", polls "a poll: lunch?", replies
"replying to Alice", forwards "a forwarded message". Embeds are mentioned ("an embed") only when the message
has nothing else to read, because links in the text already produce preview embeds.
Names and questions given here must already be cleaned by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

_EXTENSION_KINDS = {
    "image": ("png", "jpg", "jpeg", "gif", "webp", "bmp", "heic", "avif", "svg", "tiff"),
    "video": ("mp4", "mov", "webm", "mkv", "avi", "m4v"),
    "audio file": ("mp3", "ogg", "wav", "flac", "m4a", "opus", "aac"),
}
_KIND_ORDER = ("voice message", "image", "video", "audio file", "file")


def attachment_kind(filename: str, content_type: str | None) -> str:
    """"image", "video", "audio file" or "file"."""
    major = (content_type or "").split("/", 1)[0].strip().lower()
    if major in ("image", "video"):
        return major
    if major == "audio":
        return "audio file"
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    for kind, extensions in _EXTENSION_KINDS.items():
        if extension in extensions:
            return kind
    return "file"


def count_phrase(count: int, noun: str) -> str:
    """1 → "an image", 3 → "3 images"."""
    if count == 1:
        return ("an " if noun[0] in "aeiou" else "a ") + noun
    return f"{count} {noun}s"


def describe_attachments(attachments: Sequence[tuple[str, str | None]], is_voice_message: bool = False) -> str:
    """All attachments in one phrase ("" when there are none)."""
    counts: dict[str, int] = {}
    for index, (filename, content_type) in enumerate(attachments):
        kind = "voice message" if is_voice_message and index == 0 else attachment_kind(filename, content_type)
        counts[kind] = counts.get(kind, 0) + 1
    return join_words([count_phrase(counts[kind], kind) for kind in _KIND_ORDER if kind in counts])


def describe_stickers(names: Sequence[str]) -> str:
    """"a sticker: wave", "stickers: wave and hi", "a sticker" when unnamed."""
    named = [name for name in names if name]
    if not names:
        return ""
    if not named:
        return count_phrase(len(names), "sticker")
    return ("a sticker: " if len(named) == 1 else "stickers: ") + join_words(named)


def describe_poll(question: str | None) -> str:
    """"a poll: question", or "a poll"."""
    return f"a poll: {question}" if question else "a poll"


def describe_embeds(count: int) -> str:
    return count_phrase(count, "embed") if count > 0 else ""


def join_words(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = [item for item in items if item]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
