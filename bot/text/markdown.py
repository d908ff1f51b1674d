"""Discord markdown to plain words.

Code blocks (```…```) read "code block" and spoilers (``||…||``) read "spoiler": their content is never read.
Inline code is read as its text, or dropped in "skip" mode. Emphasis is not parsed in pairs: for speech it is
enough, and linear and robust, to drop the marker characters everywhere (``*``, ``~``, `` ` ``, ``|``, ``\\``)
and turn ``_`` into a space ("snake_case" reads "snake case"); a star between digits reads "times" ("5 * 3").
Line markers are stripped from the start of each line: headings ``#``, subtext ``-#``, bullets ``-``/``+``/``•``,
block quotes ``>``/``>>>``; numbered list items keep their number.
"""

from __future__ import annotations

import re

from bot.i18n import ENGLISH, translate
from bot.setting_choices import CodeMode

CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
SPOILER = re.compile(r"\|\|.+?\|\|", re.DOTALL)
INLINE_CODE = re.compile(r"`[^`]+`")
TIMES = re.compile(r"(?<=\d) ?\* ?(?=\d)")
LINE_MARKERS = re.compile(r"^[ \t]*(?:(?:>>>|>|-#|#+|[-+•])(?:[ \t]+|$))+", re.MULTILINE)

_DROPPED = str.maketrans({"*": None, "~": None, "`": None, "|": " ", "\\": " ", "_": " "})


def replace_blocks(text: str, code_mode: CodeMode, language: str = ENGLISH) -> str:
    """Code blocks and spoilers become one word each (in ``language``); inline code is dropped in "skip" mode."""
    code_block, spoiler = translate(language, "code block"), translate(language, "spoiler")
    text = CODE_BLOCK.sub(lambda _: f" {code_block} ", text)
    text = SPOILER.sub(lambda _: f" {spoiler} ", text)
    if code_mode == CodeMode.SKIP:
        text = INLINE_CODE.sub(" ", text)
    return text


def strip_markdown(text: str, language: str = ENGLISH) -> str:
    """Drop emphasis characters and line markers, keeping the words ("5 * 3" reads "5 times 3", in ``language``)."""
    # TRANSLATORS: "5 * 3" is read "5 times 3".
    times = translate(language, "times")
    return LINE_MARKERS.sub("", TIMES.sub(f" {times} ", text).translate(_DROPPED))
