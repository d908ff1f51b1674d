"""Emoji to words: custom Discord emoji (``<:name:id>``, ``<a:name:id>``) and Unicode emoji.

In a server that speaks another language (``/settings language``), Unicode emoji are named from CLDR's
annotations in that language as the ``emoji`` package carries them ("👍" → "サムズアップ" in Japanese,
"daumen hoch" in German); an emoji it does not name there falls back to the English name below.

In English, Unicode emoji are named with :func:`unicodedata.name`, lowercased:
a ZWJ sequence reads as its parts ("👩‍💻" → "woman personal computer"), skin-tone modifiers and variation
selectors are silent, keycaps read "keycap 1", flag pairs read "flag" and their letters ("🇺🇸" → "flag U S"),
subdivision flags read "flag", a gender sign in a sequence reads "woman"/"man" first ("🤷‍♀️" → "woman
shrug"), and a few common emoji with odd Unicode 1.0 names get their usual ones ("👍" → "thumbs up",
"❤️" → "red heart"). Emoji newer than Python's Unicode database have no name and are dropped.

A run of the same emoji (spaces between allowed) is read once: "😂😂😂😂" is one "face with tears of joy", not
four. In "skip" mode every emoji is dropped.
"""

from __future__ import annotations

import re
import unicodedata

import emoji as emoji_package

from bot.i18n import ENGLISH, language_of
from bot.setting_choices import EmojiMode

#: ``<:name:id>`` and animated ``<a:name:id>``.
CUSTOM_EMOJI = re.compile(r"<a?:(\w+):(\d+)>")

_SKIN = "\U0001f3fb-\U0001f3ff"
# Characters that are emoji by default (pictographs, dingbats, misc symbols and technical symbols).
_PICTO = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u231a\u231b\u2328\u23cf\u23e9-\u23fa"
# Characters that are text by default and only emoji when followed by U+FE0F.
_TEXT_DEFAULT = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u24c2\u25aa-\u25fe\u2934\u2935\u3030\u303d\u3297\u3299"
)
_ELEMENT = f"(?:[{_PICTO}][\ufe0e\ufe0f]?[{_SKIN}]?|[{_TEXT_DEFAULT}]\ufe0f)"
_TAGS = "[\U000e0020-\U000e007e]+\U000e007f"
_KEYCAP = "[#*0-9]\ufe0f?\u20e3"
_FLAG = "[\U0001f1e6-\U0001f1ff]{2}"
#: One Unicode emoji, ZWJ sequences included. Every branch consumes input, so it is linear.
UNICODE_EMOJI = re.compile(f"{_KEYCAP}|{_FLAG}|{_ELEMENT}(?:{_TAGS})?(?:\u200d{_ELEMENT})*")

_ANY_EMOJI = re.compile(rf"{CUSTOM_EMOJI.pattern}|{UNICODE_EMOJI.pattern}")

# Unicode 1.0 names that read oddly for the emoji people use most.
_BETTER_NAMES = {
    "\u2764": "red heart",
    "\u263a": "smiling face",
    "\u2705": "check mark",
    "\u2714": "check mark",
    "\u2b50": "star",
    "\u26a0": "warning",
    "\U0001f44d": "thumbs up",
    "\U0001f44e": "thumbs down",
    "\U0001f44c": "OK hand",
    "\U0001f44b": "waving hand",
    "\U0001f44f": "clapping hands",
    "\U0001f64f": "folded hands",
    "\U0001f4af": "hundred points",
    "\U0001f60d": "heart eyes",
}
# In ZWJ sequences the gender signs qualify the person: "🤷‍♀️" reads "woman shrug".
_GENDERS = {"female sign": "woman", "male sign": "man"}
_SILENT = frozenset("\u200d\ufe0e\ufe0f\u20e3") | {chr(c) for c in range(0x1F3FB, 0x1F400)}
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def custom_emoji_name(name: str) -> str:
    """``pepe_laugh`` → "pepe laugh", ``partyParrot`` → "party Parrot": underscores and camel case become spaces."""
    return " ".join(_CAMEL.sub(" ", name.replace("_", " ")).split())


def unicode_emoji_name(sequence: str) -> str:
    """The spoken name of one :data:`UNICODE_EMOJI` match, or "" when Python does not know it."""
    first = sequence[0]
    if sequence.endswith("\u20e3"):
        return f"keycap {first}"
    if "\U0001f1e6" <= first <= "\U0001f1ff" and len(sequence) == 2:
        return "flag " + " ".join(_regional_letter(c) for c in sequence)
    if "\U000e007f" in sequence:
        return "flag"
    words = [_component_name(char) for char in sequence if char not in _SILENT]
    words = [word for word in words if word]
    if len(words) > 1 and words[-1] in _GENDERS:
        words.insert(0, _GENDERS[words.pop()])
    return " ".join(words)


def _component_name(char: str) -> str:
    if char in _BETTER_NAMES:
        return _BETTER_NAMES[char]
    name = unicodedata.name(char, "").lower()
    if name.startswith("regional indicator symbol letter "):
        return name.rsplit(" ", 1)[1].upper()
    return name.removeprefix("emoji component ")


def _regional_letter(char: str) -> str:
    return chr(ord(char) - 0x1F1E6 + ord("A"))


def localized_emoji_name(sequence: str, language: str) -> str:
    """The name of one Unicode emoji in ``language`` (CLDR, via the ``emoji`` package), or "" if none."""
    code = language_of(language).split("-", 1)[0]
    if code == ENGLISH or code not in emoji_package.LANGUAGES:
        return ""
    named = emoji_package.demojize(sequence, language=code, delimiters=("\x00", "\x00"))
    if named == sequence or named.count("\x00") != 2 or not named.startswith("\x00"):
        return ""  # unknown there, or only part of the sequence was named
    return named.strip("\x00").replace("_", " ")


def replace_emoji(text: str, mode: EmojiMode, language: str = ENGLISH) -> str:
    """Replace every custom and Unicode emoji by its name (a run of the same one named once) or by a space."""
    previous_key: str | None = None
    previous_end = -1

    def substitute(match: re.Match[str]) -> str:
        nonlocal previous_key, previous_end
        custom = match.group(1)
        key = f":{custom.lower()}" if custom is not None else match.group(0)
        between = match.string[previous_end : match.start()] if previous_end >= 0 else "x"
        repeated = key == previous_key and not between.strip()
        previous_key, previous_end = key, match.end()
        if mode == EmojiMode.SKIP or repeated:
            return " "
        if custom is not None:
            name = custom_emoji_name(custom)
        else:
            name = localized_emoji_name(key, language) or unicode_emoji_name(key)
        return f" {name} "

    return _ANY_EMOJI.sub(substitute, text)
