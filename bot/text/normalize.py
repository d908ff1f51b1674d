"""Character-level tidying: invisible characters, combining-mark floods, lines, repeats, whitespace.

Repeats are capped at ``max_repeat``: a character ("soooooo" → "sooo", "!!!!!" → "!!!"), a unit of two to four
characters ("hahahahaha" → "hahaha") and a whole word, case-insensitively ("no no no no no" → "no no no").
Digits are never capped (1000000 stays a number). Lines are joined into one: a line that does not end in
punctuation gets a full stop so the voice pauses; lines without a letter or digit are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import regex

#: Format characters that emoji sequences need until emoji are named: ZWJ and tag characters.
_EMOJI_GLUE = frozenset("\u200d") | {chr(c) for c in range(0xE0020, 0xE0080)}
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
#: Letters and symbols that show nothing and say nothing (Hangul fillers, Khmer inherent vowels, the blank
#: braille pattern): popular for "empty" names and messages, and not control or format characters.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u17b4\u17b5\u2800")
#: Everything a listener would not hear: default-ignorable code points (zero-width spaces, joiners, bidi
#: controls, variation selectors, fillers), other control/format/unassigned characters, and whitespace.
_UNSPEAKABLE = regex.compile(
    r"[\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{White_Space}"
    + "".join(sorted(_BLANK_GLYPHS))
    + "]+"
)
_EMOJI_LEFTOVERS = re.compile("[\u200d\ufe00-\ufe0f\U000e0020-\U000e007f\U000e0100-\U000e01ef\u20e3]")
_COMBINING = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_COMBINING_FLOOD = re.compile(f"([{_COMBINING}]{{2}})[{_COMBINING}]+")
_SPACES = re.compile(r"[^\S\n]+")
_ANY_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +([,.!?;:…]+)(?=\s|$)")
_SENTENCE_END = ".!?,;:…。！？"


def is_blank(text: str) -> bool:
    """True when nothing speakable remains once invisible characters and whitespace are gone ("\u200b\u2060",
    a Hangul filler): such text is refused by ``/speak`` and skipped by read-aloud."""
    return not _UNSPEAKABLE.sub("", text)


def strip_invisible(text: str) -> str:
    """Drop control, format, private-use and unassigned characters and blank glyphs, except newlines and emoji
    glue.

    Control characters that are whitespace (tab, vertical tab, form feed…) become spaces and carriage returns
    newlines, so that no words get glued together.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(map(_visible, text))


def _visible(char: str) -> str:
    if char == "\n" or char in _EMOJI_GLUE:
        return char
    if unicodedata.category(char) not in _DROPPED_CATEGORIES and char not in _BLANK_GLYPHS:
        return char
    return " " if char.isspace() else ""


def strip_leftovers(text: str) -> str:
    """After emoji are named: drop stray ZWJ, variation selectors and tags, and cap combining-mark floods."""
    return _COMBINING_FLOOD.sub(r"\1", _EMOJI_LEFTOVERS.sub("", text))


def join_lines(text: str) -> str:
    """One line of speech: lines without letters or digits dropped, a full stop where a line had no end."""
    lines = [line.strip() for line in _SPACES.sub(" ", text).split("\n")]
    lines = [line for line in lines if any(char.isalnum() for char in line)]
    joined = ""
    for line in lines:
        if joined:
            joined += " " if joined[-1] in _SENTENCE_END else ". "
        joined += line
    return joined


@lru_cache(maxsize=16)
def _repeat_patterns(limit: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    return (
        re.compile(rf"([^\d\s])\1{{{limit},}}", re.IGNORECASE),
        re.compile(rf"([^\d\s]{{2,4}}?)\1{{{limit},}}", re.IGNORECASE),
    )


def cap_repeats(text: str, limit: int) -> str:
    """Cap runs of a character, of a short unit and of a word at ``limit`` (see the module docstring)."""
    char_run, unit_run = _repeat_patterns(limit)
    text = char_run.sub(lambda m: m.group(0)[:limit], text)
    text = unit_run.sub(lambda m: m.group(0)[: limit * len(m.group(1))], text)
    words: list[str] = []
    run = 0
    for word in text.split(" "):
        run = run + 1 if words and word and word.casefold() == words[-1].casefold() else 1
        if run <= limit:
            words.append(word)
    return " ".join(words)


def collapse_spaces(text: str) -> str:
    """Every run of whitespace becomes one space; no space at either end, none before punctuation."""
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _ANY_SPACE.sub(" ", text)).strip()
