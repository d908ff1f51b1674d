"""Did a voice model read the text as written? Compare its transcript with the text, word by word.

A Realtime model is a conversational model asked to read aloud; now and then it answers, adds "Sure, here it
is:", or rewords a sentence. Its output transcript is the text it spoke, so comparing normalised words
(case, punctuation, digits written as words) finds those deviations without flagging "3" read as "three".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

#: A response whose transcript is further from the text than this (edited words per word of the text) is
#: not used. A single edit is always tolerated, so a two-word text is not refused over "okay" for "ok".
DEFAULT_THRESHOLD = 0.2

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)
_TENS = ("_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


@dataclass(frozen=True, slots=True)
class Deviation:
    """How far a transcript is from the text: edited words (inserted, deleted or replaced) out of ``words``."""

    edits: int
    words: int

    @property
    def ratio(self) -> float:
        return self.edits / max(1, self.words)

    def exceeds(self, threshold: float = DEFAULT_THRESHOLD) -> bool:
        return self.edits > 1 and self.ratio > threshold


def normalised_words(text: str) -> list[str]:
    """Lower-case words without punctuation or apostrophes; numbers as English words (below 10**12)."""
    words: list[str] = []
    for found in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        word = found.replace("'", "").replace("’", "")
        if word.isascii() and word.isdigit():
            words.extend(number_words(int(word)) if len(word) <= 12 else list(map(_ONES.__getitem__, map(int, word))))
        else:
            words.append(word)
    return words


def number_words(number: int) -> list[str]:
    """``number`` (0 to 10**12 - 1) as words: 1984 -> one thousand nine hundred eighty four."""
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        tens, ones = divmod(number, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    for size, name in _SCALES:
        if number >= size:
            high, rest = divmod(number, size)
            return number_words(high) + [name] + (number_words(rest) if rest else [])
    raise AssertionError("unreachable")


def deviation(text: str, transcript: str) -> Deviation:
    """Edits between the normalised words of ``text`` and of what the model said."""
    expected, spoken = normalised_words(text), normalised_words(transcript)
    edits = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, expected, spoken, autojunk=False).get_opcodes():
        if tag != "equal":
            edits += max(i2 - i1, j2 - j1)
    return Deviation(edits=edits, words=len(expected))
