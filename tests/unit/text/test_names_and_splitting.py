"""Display names, the "X said" suppression, the length cap, splitting, and linear time on hostile input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.text import (
    CleaningOptions,
    MessageInput,
    clean_message,
    display_name_for_speech,
    should_prefix_name,
    split_for_speech,
    truncate,
)
from bot.text.names import Instant, Span
from tests.unit.text.test_properties import RAW_MARKUP, URL_SHAPED


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Alice", "Alice"),
        ("🔥 Alice 🔥", "fire Alice fire"),
        ("xX_Sniper_Xx", "xX Sniper Xx"),
        ("Aaaaaaaaaaaaalice", "Aaalice"),
        ("**Bold** ~~name~~", "Bold name"),
        ("<@123>", "someone"),
        ("https://evil.example/x", "a link to evil.example"),
        ("", "someone"),
        ("!!!", "someone"),
        ("\u200b\u200b", "someone"),
        ("Alice " * 20, "Alice Alice Alice"),
        (
            "Bartholomew Maximilian Fitzgerald-Smythe the Third of Kent",
            "Bartholomew Maximilian Fitzgerald-Smythe the Third",
        ),
    ],
)
def test_display_name_for_speech(name: str, expected: str) -> None:
    assert display_name_for_speech(name) == expected


def test_display_name_options() -> None:
    assert display_name_for_speech("🔥 Alice", emoji_mode="skip") == "Alice"
    assert display_name_for_speech("🔥", emoji_mode="skip", fallback="a member") == "a member"
    assert display_name_for_speech("Alexandra Bee", max_chars=10) == "Alexandra"


T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("author", "now", "last_author", "last_time", "window", "expected"),
    [
        (1, 100.0, None, None, 30, True),
        (1, 100.0, 2, 95.0, 30, True),
        (1, 100.0, 1, 95.0, 30, False),
        (1, 100.0, 1, 70.0, 30, True),
        (1, 100.0, 1, 70.1, 30, False),
        (1, 100.0, 1, 120.0, 30, True),
        (1, T0 + timedelta(seconds=10), 1, T0, timedelta(seconds=30), False),
        (1, T0 + timedelta(minutes=5), 1, T0, 30, True),
    ],
)
def test_should_prefix_name(
    author: int, now: Instant, last_author: int | None, last_time: Instant | None, window: Span, expected: bool
) -> None:
    assert should_prefix_name(author, now, last_author, last_time, window) is expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 20, "short"),
        ("one two three four five six", 20, "one two and more"),
        ("one two, three four five six", 25, "one two, three and more"),
        ("abcdefghijklmnopqrstuvwxyz", 20, "abcdefghijk and more"),
        ("abcdefghijklmnopqrstuvwxyz", 5, "abcde"),
        ("ab cdefgh", 5, "ab"),
        ("ab cd ef", 5, "ab cd"),
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= limit


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 10, []),
        ("  ", 10, []),
        ("Hello there.", 100, ["Hello there."]),
        ("Hello there. How are you? Fine, thanks", 20, ["Hello there.", "How are you?", "Fine, thanks"]),
        ("one two three four five", 10, ["one two", "three four", "five"]),
        ("first part, second part and more", 25, ["first part,", "second part and more"]),
        ("alpha - beta gamma delta", 18, ["alpha -", "beta gamma delta"]),
        ("これは、テストです", 6, ["これは、", "テストです"]),
        ("abcdefghijklmnop", 5, ["abcde", "fghij", "klmno", "p"]),
        ("Wait... what?! Yes.", 12, ["Wait...", "what?! Yes."]),
        ("(He said so.) Then left", 14, ["(He said so.)", "Then left"]),
        ("こんにちは。元気ですか？はい", 8, ["こんにちは。", "元気ですか？はい"]),
        ("こんにちは。元気ですか？はい", 7, ["こんにちは。", "元気ですか？", "はい"]),
    ],
)
def test_split_for_speech(text: str, limit: int, expected: list[str]) -> None:
    assert split_for_speech(text, limit) == expected


def test_split_for_speech_default_limit_is_one_request() -> None:
    sentence = "This is a sentence of moderate length. "
    pieces = split_for_speech(sentence * 300)
    assert len(pieces) == 3
    assert all(len(piece) <= 4096 and piece.endswith(".") for piece in pieces)


def test_split_for_speech_rejects_a_silly_limit() -> None:
    with pytest.raises(ValueError):
        split_for_speech("text", 0)


HOSTILE = [
    "*" * 4000,
    "<" * 4000,
    "<@" * 2000,
    "<@&1" * 1000,
    "<:a:" * 1000,
    "`" * 4000,
    "|" * 4000,
    "||a" * 1333,
    "_" * 4000,
    "~" * 4000,
    "[" * 4000,
    "[a](" * 1000,
    "http://" * 500,
    "www." * 1000,
    "https://a" + "/" * 4000,
    "> " * 2000,
    "# " * 2000,
    "\n" * 4000,
    "\u200d" * 4000,
    "👍\u200d" * 2000,
    "🇺" * 4000,
    "\u0301" * 4000,
    "ab" * 2000,
    "a " * 2000,
    "a" * 4000,
    "!" * 4000,
    "<t:1" * 1000,
    "</a" * 1000,
    "\\" * 4000,
    "a_" * 2000,
    "<t:" + "1" * 4000,
    "[a](https://" + "a" * 4000,
    "```" * 1000 + "x",
    "|| " * 2000,
    ":" * 4000,
    "@" * 4000,
    "a." * 2000,
    "\U0001f3f4" + "\U000e0067" * 4000,
    "\U0001f3f4\U000e0067" * 2000,
    "<@1> " * 1000,
    "😂 " * 2000,
    "ab " * 1500,
]


@pytest.mark.parametrize("content", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_handled(content: str) -> None:
    text = clean_message(MessageInput(content=content * 2), CleaningOptions(max_chars=300))
    assert len(text) <= 300
    assert not RAW_MARKUP.search(text)
    assert not URL_SHAPED.search(text)
