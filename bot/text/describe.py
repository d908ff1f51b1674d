"""Short spoken descriptions of what a message carries besides its text.

Attachments are counted by kind: "an image", "2 images and a file", "a voice message". The kind comes from the
content type, else from the file extension. Stickers read "a sticker: wave", polls "a poll: lunch?", replies
"replying to Alice", forwards "a forwarded message". Embeds are mentioned ("an embed") only when the message
has nothing else to read, because links in the text already produce preview embeds.
Names and questions given here must already be cleaned by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from babel.lists import format_list

from bot.i18n import ENGLISH, babel_locale, translate, translate_plural

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


#: Each kind, counted, in a language: 1 → "an image", 3 → "3 images" (and the catalogue's forms in others).
_COUNTED: dict[str, Callable[[str, int], str]] = {
    "voice message": lambda language, n: translate(language, "a voice message") if n == 1
    else translate_plural(language, "{count} voice message", "{count} voice messages", n),
    "image": lambda language, n: translate(language, "an image") if n == 1
    else translate_plural(language, "{count} image", "{count} images", n),
    "video": lambda language, n: translate(language, "a video") if n == 1
    else translate_plural(language, "{count} video", "{count} videos", n),
    "audio file": lambda language, n: translate(language, "an audio file") if n == 1
    else translate_plural(language, "{count} audio file", "{count} audio files", n),
    "file": lambda language, n: translate(language, "a file") if n == 1
    else translate_plural(language, "{count} file", "{count} files", n),
    "sticker": lambda language, n: translate(language, "a sticker") if n == 1
    else translate_plural(language, "{count} sticker", "{count} stickers", n),
    "embed": lambda language, n: translate(language, "an embed") if n == 1
    else translate_plural(language, "{count} embed", "{count} embeds", n),
}


def counted(kind: str, count: int, language: str = ENGLISH) -> str:
    """``count`` things of one kind in ``language`` ("an image", "3 images", "画像3枚")."""
    return _COUNTED[kind](language, count)


def describe_attachments(
    attachments: Sequence[tuple[str, str | None]], is_voice_message: bool = False, language: str = ENGLISH
) -> str:
    """All attachments in one phrase ("" when there are none)."""
    counts: dict[str, int] = {}
    for index, (filename, content_type) in enumerate(attachments):
        kind = "voice message" if is_voice_message and index == 0 else attachment_kind(filename, content_type)
        counts[kind] = counts.get(kind, 0) + 1
    return join_words([counted(kind, counts[kind], language) for kind in _KIND_ORDER if kind in counts], language)


def describe_stickers(names: Sequence[str], language: str = ENGLISH) -> str:
    """"a sticker: wave", "stickers: wave and hi", "a sticker" when unnamed."""
    named = [name for name in names if name]
    if not names:
        return ""
    if not named:
        return counted("sticker", len(names), language)
    if len(named) == 1:
        return translate(language, "a sticker: {names}", names=named[0])
    return translate(language, "stickers: {names}", names=join_words(named, language))


def describe_poll(question: str | None, language: str = ENGLISH) -> str:
    """"a poll: question", or "a poll"."""
    return translate(language, "a poll: {question}", question=question) if question else translate(language, "a poll")


def describe_embeds(count: int, language: str = ENGLISH) -> str:
    return counted("embed", count, language) if count > 0 else ""


def join_words(items: Sequence[str], language: str = ENGLISH) -> str:
    """"a", "a and b", "a, b and c" (in other languages, CLDR's list pattern: "a、b、c", "a, b und c")."""
    items = [item for item in items if item]
    if len(items) <= 1:
        return "".join(items)
    if language != ENGLISH:
        return format_list(items, locale=babel_locale(language))
    return ", ".join(items[:-1]) + " and " + items[-1]
