"""A server's pronunciation dictionary, applied to the cleaned text.

Entries are literal words or regular expressions, applied in order, each to the previous one's result.
Literals match whole words, case-insensitively ("gg" changes "gg" and "GG" but not "egg"); a side of the
pattern that is punctuation (":)") or Japanese/Chinese (no spaces between words) has no word condition.
Regular expressions are case-insensitive too (``(?-i:…)`` makes a part case-sensitive). Replacements are
always literal text (no ``\\1`` group references), so a replacement never expands a match beyond itself.

Safety, since patterns come from server members:

* a pattern is at most :data:`MAX_PATTERN_CHARS` characters, a replacement :data:`MAX_REPLACEMENT_CHARS`;
* :func:`validate_entry`, run when an entry is added, rejects a regular expression that does not compile,
  that can match the empty string, that uses a backreference (``\\1``, ``(?P=name)``) or a conditional, that
  repeats a group containing a repetition or an alternation (``(a+)+``, ``(a|ab)*``: exponential
  backtracking), or whose *backtracking cost* exceeds :data:`MAX_COST`. The cost multiplies, over the
  pattern, each repetition's maximum count plus one, an unbounded one (``*``, ``+``, ``{n,}``) counting as
  :data:`MAX_INPUT_CHARS`; alternatives add. So one ``.*`` or ``\\w+`` is fine, two (``\\d+x\\d+``) are not
  (cubic time), and bounded ones like ``\\d{1,4}年\\d{1,2}月`` are;
* the cost is per starting position, and a match is tried at each of up to :data:`MAX_INPUT_CHARS` of them:
  :data:`MAX_COST` allows one open-ended repetition and a factor of two more, so chains of bounded
  repetitions (``[a-z]{1,24}[a-z]{1,24}[a-z]{1,24}#``: 15,625 per position) are refused;
* :func:`apply_dictionary` works on at most :data:`MAX_INPUT_CHARS` characters (the rest is kept as is),
  skips an entry whose result would grow the text beyond :func:`growth_limit`, skips entries that fail
  validation (a stored entry from an older rule set), and holds a hard bound of :data:`TIME_BUDGET` seconds
  of CPU per message: matching runs on the ``regex`` engine with a timeout set to what is left of the budget, so
  even a slow entry on a slow machine is cut off mid-match, and the entries after it are skipped.

Patterns are checked with the standard library's parser and run on the ``regex`` package in its
``re``-compatible mode (V0), which has the timeouts ``re`` lacks.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import regex

from bot.errors import UserFacingError

if TYPE_CHECKING:  # the same module under its old name, which has type stubs (importing it warns at run time)
    import sre_parse
else:  # the stdlib's own parser: the only way to see a pattern's structure
    from re import _parser as sre_parse

log = logging.getLogger(__name__)

MAX_PATTERN_CHARS = 100
MAX_REPLACEMENT_CHARS = 100
MAX_INPUT_CHARS = 4096
MAX_COST = 2 * (MAX_INPUT_CHARS + 1)
#: Seconds of matching allowed per message (a hard bound: matching is interrupted); later entries are skipped.
TIME_BUDGET = 0.010
#: Entries beyond this many are ignored (a server should be refused more when adding).
MAX_ENTRIES = 500

_WORD_CHAR = re.compile(r"\w")
# Japanese and Chinese text has no spaces between words, so a literal there matches anywhere.
_UNSPACED_SCRIPT = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})
_BACKREFERENCES = frozenset(
    {"GROUPREF", "GROUPREF_EXISTS", "GROUPREF_IGNORE", "GROUPREF_LOC_IGNORE", "GROUPREF_UNI_IGNORE"}
)


class DictionaryError(UserFacingError, ValueError):
    """An entry that cannot be added; the message is shown to the user as is."""


class EntryLike(Protocol):
    """Anything with an entry's three fields (this module's entries, or the settings store's)."""

    @property
    def pattern(self) -> str: ...
    @property
    def replacement(self) -> str: ...
    @property
    def is_regex(self) -> bool: ...


@dataclass(frozen=True)
class DictionaryEntry:
    """Say ``replacement`` wherever ``pattern`` appears (a literal word, or a regular expression)."""

    pattern: str
    replacement: str
    is_regex: bool = False


def growth_limit(length: int) -> int:
    """Longest text the dictionary may produce from ``length`` characters: double, plus room for short texts."""
    return 2 * length + 200


def validate_entry(entry: EntryLike) -> None:
    """Raise :class:`DictionaryError` explaining why ``entry`` cannot be used (see the module docstring)."""
    _check_pattern(entry.pattern, entry.is_regex)
    if len(entry.replacement) > MAX_REPLACEMENT_CHARS:
        raise DictionaryError(
            f"The replacement is too long ({len(entry.replacement)} characters, at most {MAX_REPLACEMENT_CHARS})."
        )


def apply_dictionary(
    text: str,
    entries: Iterable[EntryLike],
    *,
    budget: float = TIME_BUDGET,
    clock: Callable[[], float] = time.thread_time,
) -> str:
    """``text`` with every usable entry applied in order (each to the previous one's result); never raises.

    ``budget`` seconds (measured with ``clock``) bound the matching for one message: an entry still matching
    when they are spent is interrupted and leaves the text as it was, and later entries are skipped. The clock
    is this thread's CPU time, so a busy machine that pauses the bot does not cost a server its dictionary; the
    patterns are compiled (and cached) before the clock starts, so a cold cache does not either.
    """
    head, tail = text[:MAX_INPUT_CHARS], text[MAX_INPUT_CHARS:]
    limit = growth_limit(len(head))
    compiled = [(_compiled(entry.pattern, entry.is_regex), entry.replacement)
                for entry in itertools.islice(entries, MAX_ENTRIES)]
    deadline = clock() + budget
    for index, (pattern, replacement) in enumerate(compiled):
        left = deadline - clock()
        if left <= 0:
            break
        if pattern is None or len(replacement) > MAX_REPLACEMENT_CHARS:
            continue
        try:
            replaced = pattern.sub(_non_empty(replacement), head, timeout=left)
        except TimeoutError:
            log.warning("dictionary entry %d took over the %.0f ms budget for one message: it and the entries "
                        "after it were skipped", index + 1, budget * 1000)
            break
        if len(replaced) <= limit:
            head = replaced
    return head + tail


@lru_cache(maxsize=1024)
def _compiled(pattern: str, is_regex: bool) -> regex.Pattern[str] | None:
    """The compiled form of a valid pattern, None for an invalid one (cached: entries repeat for every message)."""
    try:
        _check_pattern(pattern, is_regex)
    except DictionaryError:
        return None
    if is_regex:
        return regex.compile(pattern, regex.IGNORECASE | regex.V0)
    start = r"(?<!\w)" if _needs_boundary(pattern[0]) else ""
    end = r"(?!\w)" if _needs_boundary(pattern[-1]) else ""
    return regex.compile(start + regex.escape(pattern) + end, regex.IGNORECASE | regex.V0)


def _check_pattern(pattern: str, is_regex: bool) -> None:
    if not pattern.strip():
        raise DictionaryError("The word or pattern is empty.")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise DictionaryError(
            f"The word or pattern is too long ({len(pattern)} characters, at most {MAX_PATTERN_CHARS})."
        )
    if is_regex:
        _check_regex(pattern)


def _needs_boundary(char: str) -> bool:
    """Whole-word matching for letters and digits of scripts that separate words with spaces."""
    return bool(_WORD_CHAR.match(char)) and not _UNSPACED_SCRIPT.match(char)


def _check_regex(pattern: str) -> None:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
        parsed.getwidth()
        regex.compile(pattern, regex.IGNORECASE | regex.V0)  # the engine that runs it reads a few patterns apart
    except (re.error, regex.error, RecursionError, OverflowError) as error:
        raise DictionaryError(f"That is not a valid regular expression: {error}.") from None
    if parsed.getwidth()[0] == 0 or compiled.fullmatch(""):
        raise DictionaryError(
            "The pattern can match an empty piece of text; make it always match at least one character."
        )
    cost = _cost(parsed.data)
    if cost > MAX_COST:
        raise DictionaryError(
            "The pattern could be very slow: use at most one open-ended repetition (*, + or {n,}) "
            "and keep other repetitions small, like {1,4}."
        )


def _non_empty(replacement: str) -> Callable[[regex.Match[str]], str]:
    """``replacement`` for each non-empty match; an empty match stays empty (it would land between every letter)."""
    return lambda match: replacement if match.group(0) else ""


#: One parsed pattern item: an opcode and its argument, whose shape depends on the opcode.
_Item = tuple[object, Any]


def _cost(items: Sequence[_Item]) -> int:
    """Backtracking cost of a parsed sequence (module docstring); raises for forbidden constructs."""
    cost = 1
    for op, arg in items:
        name = str(op)
        if name in _BACKREFERENCES:
            raise DictionaryError("Backreferences (like \\1) and conditionals are not allowed in patterns.")
        if name in _REPEATS:
            _low, high, body = arg
            if high > 1 and _has_repeat_or_branch(body):
                raise DictionaryError(
                    "Repeating a group that itself repeats or has alternatives (like (a+)+ or (a|b)*) "
                    "is not allowed: it can be extremely slow."
                )
            count = MAX_INPUT_CHARS if high == sre_parse.MAXREPEAT or high > MAX_INPUT_CHARS else high
            cost *= (count + 1) * _cost(body)
        elif name == "BRANCH":
            cost *= sum(_cost(alternative) for alternative in arg[1])
        elif name in ("SUBPATTERN", "ATOMIC_GROUP", "ASSERT", "ASSERT_NOT"):
            cost *= _cost(arg[-1] if name != "ATOMIC_GROUP" else arg)
        cost = min(cost, MAX_COST * MAX_COST)
    return cost


def _has_repeat_or_branch(items: Sequence[_Item]) -> bool:
    for op, arg in items:
        name = str(op)
        if name in _REPEATS or name == "BRANCH":
            return True
        if name in ("SUBPATTERN", "ASSERT", "ASSERT_NOT") and _has_repeat_or_branch(arg[-1]):
            return True
        if name == "ATOMIC_GROUP" and _has_repeat_or_branch(arg):
            return True
    return False
