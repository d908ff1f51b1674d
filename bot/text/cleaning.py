"""A Discord message to the text the bot says: the read-aloud pipeline.

One pass runs, in this order (each step's output is safe input for the next):

1. invisible characters dropped (controls, zero-width, bidi; emoji glue kept for step 6);
2. code blocks → "code block", spoilers → "spoiler", inline code kept or dropped (``code_mode``);
3. links → "a link to example.com" or nothing (``link_mode``); masked links → their text;
4. mentions, slash commands, timestamps, ``@everyone``/``@here`` → words (see :mod:`bot.text.mentions`);
5. emoji → names or nothing (``emoji_mode``, see :mod:`bot.text.emoji`);
6. emoji leftovers and combining-mark floods dropped; markdown stripped (:mod:`bot.text.markdown`);
7. lines joined, repeats capped, whitespace collapsed (:mod:`bot.text.normalize`).

The pass is repeated until nothing changes (at most :data:`MAX_PASSES` times), because stripping can expose new
markup ("<@\\u200b123>" becomes "<@123>", "ht*tp://" becomes "http://"). That makes cleaning idempotent: a cleaned
text cleans to itself. A last safety net removes any raw mention, custom emoji or link start that survived
(only possible if the passes did not settle). Text without a letter or digit reads as nothing.

The raw content is cut to :data:`MAX_INPUT_CHARS` first (Discord allows 4000), so every step stays cheap; all
patterns are linear. The reply/forward prefix and the attachment/sticker/poll/embed descriptions are added
around the content, and the whole result is capped at ``max_chars`` with " and more" (content is shortened
first so the descriptions survive).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from bot.i18n import ENGLISH, N_, translate
from bot.setting_choices import EmojiMode
from bot.text import describe, emoji, links, markdown, mentions, normalize
from bot.text.models import CleaningOptions, MessageInput
from bot.text.splitting import truncate

#: Raw content beyond this is ignored (Discord's own limit is 4000).
MAX_INPUT_CHARS = 8000
MAX_PASSES = 4
#: Longest spoken display name; longer names are cut at a word (the settings store's spoken-name limit).
MAX_NAME_CHARS = 50
#: Content keeps at least this many characters when descriptions compete for the cap.
_MIN_CONTENT_CHARS = 40

DEFAULT_OPTIONS = CleaningOptions()
_NAME_OPTIONS = CleaningOptions()
#: What an unknown mention reads (translated in the server's language).
_UNKNOWN = {"user": N_("someone"), "role": N_("a role"), "channel": N_("a channel")}
#: After these, the next sentence needs no full stop of its own.
_CLAUSE_ENDS = ".!?,;:…。！？、"
#: Markup that must never reach the voice.
FORBIDDEN = re.compile(
    rf"{mentions.MENTION.pattern}|{emoji.CUSTOM_EMOJI.pattern}|{links.URL_START.pattern}", re.IGNORECASE
)


def clean_message(
    message: MessageInput, options: CleaningOptions = DEFAULT_OPTIONS, *, include_author: bool = False
) -> str:
    """The speakable text for ``message`` ("" when there is nothing to read).

    With ``include_author`` the text starts with "Alice said," (or "Alice replied to Bob,", "Alice sent" when
    there is no text); callers decide with :func:`bot.text.names.should_prefix_name`.
    """
    language = options.language
    resolve = _resolver(message, options)
    content = clean_text(message.content, options, resolve, message.created_at)
    someone = translate(language, "someone")
    reply = _name(message.reply_to_author, options, someone) if message.reply_to_author else None
    suffix = _descriptions(message, options, has_content=bool(content))
    if include_author:
        author = _name(message.author_name, options, someone)
        return _speakable(_with_author(author, reply, message.is_forward, content, suffix, options))
    if reply:
        prefix = translate(language, "replying to {name}", name=reply)
    else:
        prefix = translate(language, "a forwarded message") if message.is_forward else ""
    return _speakable(_fit(prefix, ": ", content, suffix, options.max_chars, language))


def clean_text(
    text: str,
    options: CleaningOptions = DEFAULT_OPTIONS,
    resolve: mentions.Resolver | None = None,
    created_at: datetime | None = None,
) -> str:
    """Message content alone to speakable text, without the ``max_chars`` cap (see the module docstring)."""
    resolve = resolve or _resolver(MessageInput(), options)
    text = text[:MAX_INPUT_CHARS]
    for _ in range(MAX_PASSES):
        cleaned = _one_pass(text, options, resolve, created_at)
        if cleaned == text:
            break
        text = cleaned
    while FORBIDDEN.search(text):
        text = normalize.collapse_spaces(FORBIDDEN.sub(" ", text))
    return _speakable(text)


def _speakable(text: str) -> str:
    """``text``, or "" when it has no letter or digit (punctuation alone is not worth a voice)."""
    return text if any(char.isalnum() for char in text) else ""


def display_name_for_speech(
    name: str, *, emoji_mode: EmojiMode = EmojiMode.NAME, max_chars: int = MAX_NAME_CHARS, fallback: str = "someone",
    language: str = ENGLISH,
) -> str:
    """A display name cleaned like message text (emoji, repeats, markup), cut at a word, or ``fallback``.

    For "Alice said" prefixes, replies and join/leave announcements.
    """
    if emoji_mode == EmojiMode.NAME and language == ENGLISH:
        options = _NAME_OPTIONS
    else:
        options = CleaningOptions(emoji_mode=emoji_mode, language=language)
    cleaned = clean_text(name[: max_chars * 8], options)
    if len(cleaned) > max_chars:
        cut = cleaned.rfind(" ", 0, max_chars + 1)
        cleaned = cleaned[:cut] if cut > 0 else cleaned[:max_chars]
        cleaned = cleaned.rstrip(" ,.;:!?-")
    return cleaned or fallback


def _one_pass(text: str, options: CleaningOptions, resolve: mentions.Resolver, created_at: datetime | None) -> str:
    text = normalize.strip_invisible(text)
    text = markdown.replace_blocks(text, options.code_mode, options.language)
    text = links.replace_links(text, options.link_mode, options.language)
    text = mentions.replace_mentions(text, resolve, created_at, options.language)
    text = emoji.replace_emoji(text, options.emoji_mode, options.language)
    text = markdown.strip_markdown(normalize.strip_leftovers(text), options.language)
    text = normalize.join_lines(text)
    return normalize.collapse_spaces(normalize.cap_repeats(text, options.max_repeat))


def _resolver(message: MessageInput, options: CleaningOptions) -> mentions.Resolver:
    tables: dict[str, Mapping[int, str]] = {
        "user": message.mentions,
        "role": message.role_mentions,
        "channel": message.channel_mentions,
    }
    cache: dict[tuple[str, int], str] = {}

    def resolve(kind: str, ident: int) -> str:
        key = (kind, ident)
        if key not in cache:
            raw = tables[kind].get(ident)
            unknown = translate(options.language, _UNKNOWN[kind])
            cache[key] = _name(raw, options, unknown) if raw else unknown
        return cache[key]

    return resolve


def _name(raw: str | None, options: CleaningOptions, fallback: str) -> str:
    return display_name_for_speech(raw or "", emoji_mode=options.emoji_mode, fallback=fallback,
                                   language=options.language)


def _descriptions(message: MessageInput, options: CleaningOptions, *, has_content: bool) -> str:
    language = options.language
    parts = [describe.describe_attachments(message.attachments, message.is_voice_message, language)]
    if message.sticker_names:
        names = [_name(n, options, "") for n in message.sticker_names]
        parts.append(describe.describe_stickers(names, language))
    if message.has_poll or message.poll_question:
        question = clean_text(message.poll_question or "", options)
        parts.append(describe.describe_poll(question, language))
    if not has_content and not any(parts):
        parts.append(describe.describe_embeds(message.embeds, language))
    return _join_sentences([part for part in parts if part], language)


def _join_sentences(parts: list[str], language: str) -> str:
    # TRANSLATORS: ends a message before the description of its attachments: ". " in English ("hello. an image").
    stop = translate(language, ". ")
    joined = ""
    for part in parts:
        if not part:
            continue
        if joined:
            joined += " " if joined[-1] in _CLAUSE_ENDS else stop
        joined += part
    return joined


def _fit(prefix: str, glue: str, content: str, suffix: str, limit: int, language: str) -> str:
    """``prefix`` + ``glue`` + content + descriptions, the content shortened first to fit ``limit``."""
    more = translate(language, " and more")

    def assemble(body: str) -> str:
        head = prefix + glue + body if prefix and body else prefix or body
        return _join_sentences([head, suffix], language)

    full = assemble(content)
    if len(full) <= limit:
        return full
    room = limit - (len(full) - len(content))
    if content and room >= _MIN_CONTENT_CHARS:
        fitted = assemble(_truncate(content, room, more))
        if len(fitted) <= limit:
            return fitted
    return _truncate(full, limit, more)


def _truncate(text: str, limit: int, more: str) -> str:
    """``truncate``, never leaving a head that reads as markup once " and more" follows it: "#", "+" or ">" cut
    from "#1…" would start a heading, a list item or a quote, which the next cleaning drops ("# and more" → "and
    more"), so the capped text would not be what cleaning makes of itself."""
    cut = truncate(text, limit, more)
    if cut != text and (marker := markdown.LINE_MARKERS.match(cut)):
        return cut[marker.end():]
    return cut


def _with_author(author: str, reply: str | None, forward: bool, content: str, suffix: str,
                 options: CleaningOptions) -> str:
    """"Alice said, …" and its variants, worded in the server's language."""
    language, limit = options.language, options.max_chars
    if not content and not suffix:
        return ""
    if not content:
        if reply:
            sent = translate(language, "{name} replied to {target} with {things}", name=author, target=reply,
                             things=suffix)
        elif forward:
            sent = translate(language, "{name} forwarded {things}", name=author, things=suffix)
        else:
            sent = translate(language, "{name} sent {things}", name=author, things=suffix)
        return truncate(sent, limit, translate(language, " and more"))
    if reply:
        said = translate(language, "{name} replied to {target}", name=author, target=reply)
    elif forward:
        said = translate(language, "{name} forwarded a message", name=author)
    else:
        said = translate(language, "{name} said", name=author)
    # TRANSLATORS: what separates "Alice said" from the message: ", " in English ("Alice said, hello").
    return _fit(said, translate(language, ", "), content, suffix, limit, language)
