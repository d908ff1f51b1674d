"""Property tests: clean_message and split_for_speech hold their promises on generated inputs (hundreds per test;
thousands with SPEECHBOT_TEST_THOROUGH=1, tests/support/properties.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.text import CleaningOptions, MessageInput, clean_message, display_name_for_speech, split_for_speech
from bot.text.cleaning import MAX_NAME_CHARS
from bot.text.normalize import is_blank
from bot.text.splitting import truncate
from tests.support.properties import examples

pytestmark = pytest.mark.slow  # hundreds of generated inputs per test

#: Raw markup that must never be spoken.
RAW_MARKUP = re.compile(r"<(?:@!?|@&|#)\d+>|<a?:\w+:\d+>")
URL_SHAPED = re.compile(r"https?://|(?<![\w.@/-])www\.(?=[^\W_])", re.IGNORECASE)

ids = st.integers(min_value=0, max_value=2**64)
names = st.text(max_size=40)
fragments = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            " ", "\n", "*", "**", "_", "__", "~~", "`", "```", "||", ">", "> ", ">>> ", "# ", "-# ", "- ", "\\",
            "<", ">", "@", ":", "#", "!", "&", "/", ".", "www.", "http://", "https://", "](", "[", ")",
            "@everyone", "@here", "\u200d", "\ufe0f", "\u200b", "😂", "👍🏽", "🇺🇸", "👩‍💻", "1️⃣", "ooooo", "!!!!",
            "ha ha ha ha", "<t:", ":R>", "</", "<a:", "\u0301\u0301\u0301",
        ]
    ),
    ids.map(lambda i: f"<@{i}>"),
    ids.map(lambda i: f"<@!{i}>"),
    ids.map(lambda i: f"<@&{i}>"),
    ids.map(lambda i: f"<#{i}>"),
    st.tuples(st.from_regex(r"\w{1,12}", fullmatch=True), ids).map(lambda t: f"<:{t[0]}:{t[1]}>"),
    st.tuples(st.from_regex(r"\w{1,12}", fullmatch=True), ids).map(lambda t: f"<a:{t[0]}:{t[1]}>"),
    st.integers(min_value=-(10**13), max_value=10**13).map(lambda i: f"<t:{i}:R>"),
    st.from_regex(r"(https?://|www\.)[a-z0-9._~:/?#@!$&'()*+,;=%-]{0,30}", fullmatch=True),
    st.from_regex(r"\[[^\[\]\n]{0,10}\]\(https?://[a-z.]{1,10}\)", fullmatch=True),
)
contents = st.lists(fragments, max_size=25).map("".join)
mention_maps = st.dictionaries(ids, names, max_size=3)
options = st.builds(
    CleaningOptions,
    emoji_mode=st.sampled_from(["name", "skip"]),
    link_mode=st.sampled_from(["domain", "skip"]),
    code_mode=st.sampled_from(["read", "skip"]),
    max_chars=st.integers(min_value=1, max_value=400),
    max_repeat=st.integers(min_value=1, max_value=4),
)
messages = st.builds(
    MessageInput,
    content=contents,
    author_name=names,
    mentions=mention_maps,
    role_mentions=mention_maps,
    channel_mentions=mention_maps,
    attachments=st.lists(st.tuples(st.text(max_size=12), st.none() | st.sampled_from(["image/png", "audio/ogg"]))),
    sticker_names=st.lists(names, max_size=3),
    has_poll=st.booleans(),
    poll_question=st.none() | contents,
    reply_to_author=st.none() | names,
    is_forward=st.booleans(),
    embeds=st.integers(min_value=0, max_value=3),
)


def assert_speakable(text: str, limit: int) -> None:
    assert len(text) <= limit
    assert text == text.strip()
    assert not re.search(r"\s\s", text)
    assert "\n" not in text
    assert not RAW_MARKUP.search(text), text
    assert not URL_SHAPED.search(text), text


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, options, st.booleans())
def test_clean_message_is_always_speakable(message: MessageInput, opts: CleaningOptions, author: bool) -> None:
    assert_speakable(clean_message(message, opts, include_author=author), opts.max_chars)


@example("0[](HTTP://)00", {}, CleaningOptions(max_chars=3, max_repeat=1))
@example("-0000000000", {}, CleaningOptions(max_chars=10, max_repeat=1))  # once "- and more", then "and more"
@example("@EVERYONE0", {}, CleaningOptions(max_chars=9, max_repeat=1))  # cut to "@EVERYONE", then "everyone"
@example("#0000000000", {}, CleaningOptions(max_chars=10, max_repeat=1))  # "# and more" is a heading
@example(">>>0000000000", {}, CleaningOptions(max_chars=12, max_repeat=1))  # ">>> and more" is a quote
@example("+0000000000", {}, CleaningOptions(max_chars=10, max_repeat=1))  # "+ and more" is a list item
@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contents, mention_maps, options)
def test_cleaning_is_idempotent(content: str, users: dict[int, str], opts: CleaningOptions) -> None:
    once = clean_message(MessageInput(content=content, mentions=users), opts)
    assert clean_message(MessageInput(content=once, mentions=users), opts) == once


@settings(max_examples=examples(1000), deadline=None)
@given(st.text(max_size=400), options)
def test_arbitrary_unicode_is_speakable(content: str, opts: CleaningOptions) -> None:
    once = clean_message(MessageInput(content=content), opts)
    assert_speakable(once, opts.max_chars)
    assert clean_message(MessageInput(content=once), opts) == once


@settings(max_examples=examples(500), deadline=None)
@given(ids, names, st.sampled_from(["<@{}>", "<@!{}>"]))
def test_user_mentions_read_as_the_spoken_display_name(user: int, name: str, form: str) -> None:
    spoken = clean_message(MessageInput(content="hi " + form.format(user), mentions={user: name}))
    assert spoken == clean_message(MessageInput(content="hi " + display_name_for_speech(name)))


VOCABULARY = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "I", "can't", "42", "3.14", "é", "日本"]
prose = st.lists(
    st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(["", "", "", ",", ".", "!", "?"])).map("".join),
    min_size=1,
    max_size=30,
    unique=True,
).map(" ".join)


@settings(max_examples=examples(500), deadline=None)
@given(prose)
def test_plain_prose_is_read_unchanged(text: str) -> None:
    assert clean_message(MessageInput(content=text), CleaningOptions(max_chars=4096)) == text


@settings(max_examples=examples(1000), deadline=None)
@given(names)
def test_display_names_are_clean_and_stable(name: str) -> None:
    spoken = display_name_for_speech(name)
    assert_speakable(spoken, MAX_NAME_CHARS)
    assert spoken
    assert display_name_for_speech(spoken) == spoken


@settings(max_examples=examples(1000), deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=300))
def test_truncate_never_exceeds_the_limit(text: str, limit: int) -> None:
    result = truncate(text, limit)
    assert len(result) <= limit
    if len(text) <= limit:
        assert result == text


split_texts = st.lists(
    st.one_of(st.text(max_size=30), st.sampled_from([". ", "! ", "? ", " ", "\n", "x" * 50, "word "])), max_size=60
).map("".join)


@settings(max_examples=examples(1000), deadline=None)
@given(split_texts, st.integers(min_value=1, max_value=120))
def test_split_for_speech_invariants(text: str, limit: int) -> None:
    pieces = split_for_speech(text, limit)
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert all(piece == piece.strip() for piece in pieces)
    assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", text)
    if all(len(word) <= limit for word in text.split()) and not re.search("[。！？、，；]", text):
        assert " ".join(pieces).split() == text.split()


@settings(max_examples=examples(200), deadline=None)
@given(split_texts.map(lambda t: t * 20))
def test_split_at_the_real_limit(text: str) -> None:
    pieces = split_for_speech(text)
    assert all(0 < len(piece) <= 4096 for piece in pieces)
    assert " ".join(pieces).split() == text.split() or max(map(len, text.split())) > 4096


INVISIBLE = st.sampled_from(
    ["\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u00ad", "\u034f", "\u061c", "\u180e", "\u202a", "\u202e",
     "\u2066", "\u2069", "\ufe0f", "\ufeff", "\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\U000e0041",
     " ", "\n", "\t", "\u3000", "\u00a0"]
)


@given(st.lists(INVISIBLE, min_size=1, max_size=30).map("".join))
def test_text_made_only_of_invisible_characters_is_blank_and_cleans_to_nothing(text: str) -> None:
    assert is_blank(text)
    assert clean_message(MessageInput(content=text), CleaningOptions()) == ""


@given(st.text(min_size=1, max_size=20).filter(lambda t: any(c.isalnum() for c in t)), st.lists(INVISIBLE).map("".join))
def test_a_visible_letter_among_invisible_ones_is_not_blank(visible: str, invisible: str) -> None:
    assert not is_blank(invisible + visible + invisible)
