"""Comparing a voice model's transcript with the text it was asked to read."""

from __future__ import annotations

import pytest

from bot.speech.transcript import deviation, normalised_words, number_words


def test_words_are_compared_without_case_punctuation_or_apostrophes() -> None:
    assert normalised_words("Don’t STOP — it's 'fine', OK?!") == ["dont", "stop", "its", "fine", "ok"]


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (1984, "one thousand nine hundred eighty four"),
        (2_000_017, "two million seventeen"),
    ],
)
def test_numbers_are_spelled_out(number: int, words: str) -> None:
    assert " ".join(number_words(number)) == words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Hello world, this is a test.", "hello world this is a test"),
        ("Meet me at 3 in room 42.", "Meet me at three in room forty-two."),
        ("Ok", "Okay."),  # one edit is always tolerated
        ("Please join the voice channel now", "Please, join the voice channel right now."),  # 1 of 6
    ],
)
def test_faithful_readings_pass(text: str, spoken: str) -> None:
    assert not deviation(text, spoken).exceeds()


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Hello world, this is a test.", "Sure! Here is your text: hello world, this is a test."),
        ("What time is it?", "It is about three in the afternoon."),
        ("Good morning everyone", ""),
        ("Read this aloud please", "I can't help with that."),
    ],
)
def test_answers_additions_and_silence_are_caught(text: str, spoken: str) -> None:
    found = deviation(text, spoken)
    assert found.exceeds(), found


def test_the_deviation_counts_edited_words_per_word_of_the_text() -> None:
    found = deviation("one two three four five six seven eight nine ten", "one two three four five six seven")
    assert (found.edits, found.words, found.ratio) == (3, 10, 0.3)
    assert found.exceeds(0.2) and not found.exceeds(0.3)
