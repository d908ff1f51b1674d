"""The pronunciation dictionary: literal and regex entries, validation rules, and safety bounds."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.text.dictionary import (
    MAX_ENTRIES,
    MAX_INPUT_CHARS,
    DictionaryEntry,
    DictionaryError,
    apply_dictionary,
    growth_limit,
    validate_entry,
)
from tests.support.properties import examples

E = DictionaryEntry


@pytest.mark.parametrize(
    ("text", "entries", "expected"),
    [
        ("gg everyone", [E("gg", "good game")], "good game everyone"),
        ("GG! Gg.", [E("gg", "good game")], "good game! good game."),
        ("egg and ggs", [E("gg", "good game")], "egg and ggs"),
        ("hi :) there", [E(":)", "smile")], "hi smile there"),
        ("a.b a+b", [E("a+b", "a plus b")], "a.b a plus b"),
        ("草生える", [E("草", "わら")], "わら生える"),
        ("naïve naïveté", [E("naïve", "naive")], "naive naïveté"),
        ("brb", [E("brb", "be right back"), E("back", "BACK")], "be right BACK"),
        ("lol loool looooool", [E("lo+l", "laugh", is_regex=True)], "laugh laugh laugh"),
        ("wwwww", [E("w{2,}", "warai", is_regex=True)], "warai"),
        ("2024年3月", [E(r"\d{1,4}年\d{1,2}月", "a date", is_regex=True)], "a date"),
        ("price $5", [E(r"\$(\d)", r"\1 dollars", is_regex=True)], r"price \1 dollars"),
        ("nothing here", [E("zzz", "sleep")], "nothing here"),
        ("ok", [], "ok"),
    ],
)
def test_apply(text: str, entries: list[DictionaryEntry], expected: str) -> None:
    assert apply_dictionary(text, entries) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (E("", "x"), "empty"),
        (E("   ", "x"), "empty"),
        (E("a" * 101, "x"), "too long"),
        (E("ok", "x" * 101), "replacement is too long"),
        (E("(", "x", is_regex=True), "not a valid regular expression"),
        (E("{s", "x", is_regex=True), "not a valid regular expression"),
        (E("(a+)+", "x", is_regex=True), "Repeating a group"),
        (E("(a*)*b", "x", is_regex=True), "Repeating a group"),
        (E("(a|ab)+c", "x", is_regex=True), "Repeating a group"),
        (E(r"(?:\w+\s?)+", "x", is_regex=True), "Repeating a group"),
        (E(r"(a)\1", "x", is_regex=True), "Backreferences"),
        (E(r"(?P<x>a)(?P=x)", "x", is_regex=True), "Backreferences"),
        (E(r"(a)?(?(1)b|c)", "x", is_regex=True), "Backreferences"),
        (E(r"\d+x\d+", "x", is_regex=True), "very slow"),
        (E(r".*a.*b", "x", is_regex=True), "very slow"),
        (E(r"a*", "x", is_regex=True), "empty"),
        (E(r"\b", "x", is_regex=True), "empty"),
        (E(r"(?=a)", "x", is_regex=True), "empty"),
    ],
)
def test_validation_rejects_with_a_clear_message(entry: DictionaryEntry, message: str) -> None:
    with pytest.raises(DictionaryError, match=message):
        validate_entry(entry)


@pytest.mark.parametrize(
    "pattern",
    [r"lo+l", r"w{2,}", r"\d{1,4}年\d{1,2}月", r"(?:ha){2,}", r"colou?r", r"https?://\S+", r"(?<=a)b+", r"x(?=y)"],
)
def test_validation_accepts_reasonable_patterns(pattern: str) -> None:
    validate_entry(E(pattern, "x", is_regex=True))


def test_invalid_stored_entries_are_skipped_not_raised() -> None:
    entries = [E("(a+)+", "boom", is_regex=True), E("(", "x", is_regex=True), E("ok", "okay")]
    assert apply_dictionary("aaa ok", entries) == "aaa okay"


def test_growth_is_bounded() -> None:
    text = "a " * 100
    assert apply_dictionary(text, [E("a", "x" * 100)]) == text


def test_entries_apply_until_the_bound() -> None:
    text = "a b c"
    grown = apply_dictionary(text, [E("a", "x" * 100), E("b", "y" * 100), E("c", "z" * 100)])
    assert grown == "x" * 100 + " " + "y" * 100 + " c"
    assert len(grown) <= growth_limit(len(text))


def test_text_beyond_the_input_cap_is_kept_unchanged() -> None:
    text = "gg " * 2000
    result = apply_dictionary(text, [E("gg", "GG")])
    assert result[:MAX_INPUT_CHARS].count("GG") > 1000
    assert result.endswith("gg ")
    assert len(result) == len(text)


@pytest.mark.parametrize("pattern", [r"a.*b", r"\w+!", r"(?:ab){1,10}c", r"x{0,4000}y"])
def test_allowed_patterns_finish_on_adversarial_input(pattern: str) -> None:
    text = "a" * MAX_INPUT_CHARS
    assert apply_dictionary(text, [E(pattern, "z", is_regex=True)] * 3) == text


def test_time_budget_stops_later_entries() -> None:
    ticks = iter(range(100))
    entries = [E("a", "b"), E("b", "c"), E("c", "d"), E("d", "e")]
    result = apply_dictionary("a", entries, budget=1.5, clock=lambda: float(next(ticks)))
    assert result == "b"  # 0.5 s left for the first entry, none for the second


def test_an_entry_still_matching_when_the_budget_is_spent_is_interrupted(caplog: pytest.LogCaptureFixture) -> None:
    """``a.*b`` is accepted (one open-ended repetition) but quadratic: on 4,096 a's it takes tens of ms."""
    text = "a" * MAX_INPUT_CHARS + " gg"
    result = apply_dictionary(text, [E("a.*b", "z", is_regex=True), E("gg", "good game")], budget=0.002)
    assert result == text
    assert "dictionary entry 1 took over the 2 ms budget" in caplog.text


@pytest.mark.parametrize(
    "pattern", [r"[a-z]{1,24}[a-z]{1,24}[a-z]{1,24}#", r"\w+\d{1,4}x", r"[a-z]{1,90}[a-z]{1,91}"]
)
def test_chains_of_repetitions_are_refused(pattern: str) -> None:
    with pytest.raises(DictionaryError, match="could be very slow"):
        validate_entry(E(pattern, "x", is_regex=True))


def test_entries_beyond_the_maximum_are_ignored() -> None:
    entries = [E(f"w{i}", "x") for i in range(600)]
    # a clock that stands still: only the cap may stop the entries, not the time budget (compiling 500 patterns
    # on a loaded CI machine can take longer than the budget; that has its own test above)
    assert apply_dictionary("w0 w499 w500 w599", entries, clock=lambda: 0.0) == "x x w500 w599"


texts = st.text(max_size=300)
entries = st.lists(
    st.builds(
        DictionaryEntry,
        st.text(max_size=12) | st.sampled_from(["a", "gg", "lo+l", "(a+)+", "\\w+", "x*", "[", "(?i)b", "."]),
        st.text(max_size=30),
        st.booleans(),
    ),
    max_size=6,
)


@pytest.mark.slow
@settings(max_examples=examples(1000), deadline=None)
@given(texts, entries)
@example("", [DictionaryEntry("{s", "", True)])  # valid for ``re``, refused by the ``regex`` engine that runs it
def test_apply_never_raises_and_respects_growth(text: str, dictionary: list[DictionaryEntry]) -> None:
    result = apply_dictionary(text, dictionary)
    assert len(result) <= growth_limit(len(text))


@pytest.mark.slow
@settings(max_examples=examples(500), deadline=None)
@given(st.builds(DictionaryEntry, st.text(max_size=120), st.text(max_size=120), st.booleans()))
def test_validate_only_raises_dictionary_error(entry: DictionaryEntry) -> None:
    try:
        validate_entry(entry)
    except DictionaryError as error:
        assert str(error)


def test_a_cold_cache_does_not_cost_a_dictionary_its_last_entries() -> None:
    """Compiling 500 new patterns takes longer than the whole budget: it happens before the clock starts."""
    fresh = uuid.uuid4().hex[:8]  # patterns no earlier test compiled
    entries = [E(f"w{i}{fresh}", "x") for i in range(MAX_ENTRIES)]
    assert apply_dictionary(f"w0{fresh} w{MAX_ENTRIES - 1}{fresh}", entries) == "x x"
