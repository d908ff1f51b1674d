"""Example tests for bot.text.clean_message: one readable table per rule (input → what the bot says)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.text import CleaningOptions, MessageInput, clean_message

SKIP_ALL = CleaningOptions(emoji_mode="skip", link_mode="skip", code_mode="skip")


DEFAULTS = CleaningOptions()


def say(content: str, options: CleaningOptions = DEFAULTS, **fields: object) -> str:
    return clean_message(MessageInput(content=content, **fields), options)  # type: ignore[arg-type]


NAMES = {
    "mentions": {1: "Alice", 2: "Bob_the_Builder 🔨"},
    "role_mentions": {3: "Moderators"},
    "channel_mentions": {4: "general"},
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("hi <@1>", "hi Alice"),
        ("hi <@!1>", "hi Alice"),
        ("<@2> built it", "Bob the Builder hammer built it"),
        ("ping <@&3>", "ping Moderators"),
        ("see <#4>", "see general"),
        ("who is <@99>?", "who is someone?"),
        ("<@&98> and <#97>", "a role and a channel"),
        ("@everyone look", "everyone look"),
        ("@here now", "here now"),
        ("mail me@here.com", "mail me@here.com"),
        ("try </config set:123>", "try slash config set"),
        ("try </set-voice:5>", "try slash set voice"),
    ],
)
def test_mentions(content: str, expected: str) -> None:
    assert say(content, **NAMES) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<t:1700000000:t>", "22:13 UTC"),
        ("<t:1700000000:T>", "22:13:20 UTC"),
        ("<t:1700000000:d>", "November 14, 2023"),
        ("<t:1700000000:D>", "November 14, 2023"),
        ("<t:1700000000>", "November 14, 2023 at 22:13 UTC"),
        ("<t:1700000000:f>", "November 14, 2023 at 22:13 UTC"),
        ("<t:1700000000:F>", "Tuesday, November 14, 2023 at 22:13 UTC"),
        ("<t:1700000000:R>", "November 14, 2023 at 22:13 UTC"),
        ("<t:99999999999999999:R>", "a time"),
    ],
)
def test_timestamps(content: str, expected: str) -> None:
    assert say(content) == expected


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (datetime(2023, 11, 11, 22, 13, tzinfo=UTC), "in 3 days"),
        (datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC), "1 hour ago"),
        (datetime(2023, 11, 14, 22, 13, 5, tzinfo=UTC), "now"),
    ],
)
def test_relative_timestamps_use_the_message_time(created_at: datetime, expected: str) -> None:
    assert say("<t:1700000000:R>", created_at=created_at) == expected


@pytest.mark.parametrize(
    ("content", "expected", "skipped"),
    [
        ("lol <:pepe_laugh:123>", "lol pepe laugh", "lol"),
        ("<a:partyParrot:456> yay", "party Parrot yay", "yay"),
        ("nice 👍", "nice thumbs up", "nice"),
        ("hmm 🤔", "hmm thinking face", "hmm"),
        ("ok 👍🏽", "ok thumbs up", "ok"),
        ("idk 🤷‍♀️", "idk woman shrug", "idk"),
        ("love ❤️", "love red heart", "love"),
        ("coding 👩‍💻", "coding woman personal computer", "coding"),
        ("family 👨‍👩‍👧", "family man woman girl", "family"),
        ("go 🇺🇸", "go flag U S", "go"),
        ("press #️⃣", "press keycap #", "press"),
        ("lmao 😂😂😂😂😂", "lmao face with tears of joy", "lmao"),
        ("lmao 😂 😂 😂", "lmao face with tears of joy", "lmao"),
        ("<:kek:1><:kek:1><:kek:1>", "kek", ""),
        ("🔥", "fire", ""),
        ("a ✨ b", "a sparkles b", "a b"),
        ("© 2024", "© 2024", "© 2024"),
    ],
)
def test_emoji(content: str, expected: str, skipped: str) -> None:
    assert say(content) == expected
    assert say(content, CleaningOptions(emoji_mode="skip")) == skipped


@pytest.mark.parametrize(
    ("content", "expected", "skipped"),
    [
        ("see https://www.example.com/page?x=1", "see a link to example.com", "see"),
        ("see https://example.com.", "see a link to example.com.", "see."),
        ("at www.python.org/docs, ok", "at a link to python.org, ok", "at, ok"),
        ("HTTP://Sub.Example.CO.UK/x", "a link to example.co.uk", ""),
        ("quiet <https://example.com/x>", "quiet a link to example.com", "quiet"),
        ("read [the docs](https://docs.python.org/3/) now", "read the docs now", "read the docs now"),
        ("read [the docs](<https://docs.python.org>)", "read the docs", "read the docs"),
        ("login https://user:pw@example.com:8080/", "login a link to example.com", "login"),
        ("just https:// alone", "just a link alone", "just alone"),
        ("see https://discord.com/channels/1/2/3", "see a link to a Discord message", "see"),
        ("dms https://ptb.discord.com/channels/@me/2/3", "dms a link to a Discord message", "dms"),
        ("join https://discord.gg/abc", "join a link to discord.gg", "join"),
        ("file.txt and e.g. wwwx.com", "file.txt and e.g. wwwx.com", "file.txt and e.g. wwwx.com"),
        ("lol wwwwwww. ok www.", "lol www. ok www.", "lol www. ok www."),
    ],
)
def test_links(content: str, expected: str, skipped: str) -> None:
    assert say(content) == expected
    assert say(content, CleaningOptions(link_mode="skip")) == skipped


@pytest.mark.parametrize(
    ("content", "expected", "skipped"),
    [
        ("run ```py\nprint('hi')\n``` now", "run code block now", "run code block now"),
        ("use `pip install` here", "use pip install here", "use here"),
        ("a ||secret|| b", "a spoiler b", "a spoiler b"),
        ("||<@1> https://x.com||", "spoiler", "spoiler"),
        ("**bold** *italic* __under__ ~~gone~~ _it_", "bold italic under gone it", "bold italic under gone it"),
        ("***all*** of ~~**it**~~", "all of it", "all of it"),
        ("snake_case_name", "snake case name", "snake case name"),
        ("5 * 3 = 15, 2*4", "5 times 3 = 15, 2 times 4", "5 times 3 = 15, 2 times 4"),
        ("# Title\nbody", "Title. body", "Title. body"),
        ("### Small title", "Small title", "Small title"),
        ("-# tiny text", "tiny text", "tiny text"),
        ("> quoted\nreply", "quoted. reply", "quoted. reply"),
        (">>> all\nquoted", "all. quoted", "all. quoted"),
        ("- one\n- two\n* three", "one. two. three", "one. two. three"),
        ("1. first\n2. second", "1. first. 2. second", "1. first. 2. second"),
        ("line one,\nline two", "line one, line two", "line one, line two"),
        ("\\*not italic\\*", "not italic", "not italic"),
        ("unclosed ``` fence", "unclosed fence", "unclosed fence"),
    ],
)
def test_markdown(content: str, expected: str, skipped: str) -> None:
    assert say(content) == expected
    assert say(content, CleaningOptions(code_mode="skip")) == skipped


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("soooooooo good", "sooo good"),
        ("what!!!!!!!!", "what!!!"),
        ("wait......", "wait..."),
        ("what?!?!?!?!?!", "what?!?!?!"),
        ("hahahahahaha", "hahaha"),
        ("no no no no no no", "no no no"),
        ("No no NO no", "No no NO"),
        ("1000000 people", "1000000 people"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaa"),
    ],
)
def test_repeats(content: str, expected: str) -> None:
    assert say(content) == expected


def test_max_repeat_option() -> None:
    assert say("soooo!!!! no no no", CleaningOptions(max_repeat=1)) == "so! no"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", ""),
        ("   \n\t ", ""),
        ("!!!", ""),
        ("**", ""),
        ("a\u200bb", "ab"),
        ("bidi\u202e text", "bidi text"),
        ("tab\tseparated", "tab separated"),
        ("form\x0cfeed\x1fand\x85next", "form feed and next"),
        ("bell\x07s", "bells"),
        ("windows\r\nlines\rold mac", "windows. lines. old mac"),
        ("Z\u0338\u0321\u032a\u032f\u0368\u034ao", "Z\u0338\u0321o"),
        ("word ,  spaced  !", "word, spaced!"),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_whitespace_and_invisible_characters(content: str, expected: str) -> None:
    assert say(content) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"attachments": [("cat.png", "image/png")]}, "an image"),
        ({"attachments": [("a.jpg", None), ("b.webp", None)]}, "2 images"),
        ({"attachments": [("clip.mp4", "video/mp4")]}, "a video"),
        ({"attachments": [("song.mp3", None)]}, "an audio file"),
        ({"attachments": [("notes.txt", "text/plain"), ("x.zip", None), ("y", None)]}, "3 files"),
        ({"attachments": [("a.png", None), ("b.pdf", None)]}, "an image and a file"),
        ({"attachments": [("voice-message.ogg", "audio/ogg")], "is_voice_message": True}, "a voice message"),
        ({"sticker_names": ["Wave"]}, "a sticker: Wave"),
        ({"sticker_names": ["Wave", "Hi"]}, "stickers: Wave and Hi"),
        ({"has_poll": True, "poll_question": "Pizza **or** sushi?"}, "a poll: Pizza or sushi?"),
        ({"has_poll": True}, "a poll"),
        ({"embeds": 1}, "an embed"),
        ({"embeds": 2, "content": "look https://x.com"}, "look a link to x.com"),
        ({"reply_to_author": "Alice", "content": "agreed"}, "replying to Alice: agreed"),
        ({"reply_to_author": "Alice", "attachments": [("a.png", None)]}, "replying to Alice. an image"),
        ({"is_forward": True, "content": "news"}, "a forwarded message: news"),
        ({"content": "look", "attachments": [("a.png", None)]}, "look. an image"),
        ({"content": "look!", "attachments": [("a.png", None)]}, "look! an image"),
        ({"content": "!!", "embeds": 0}, ""),
    ],
)
def test_descriptions(fields: dict[str, object], expected: str) -> None:
    fields.setdefault("content", "")
    assert clean_message(MessageInput(**fields)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"content": "hello"}, "Alice said, hello"),
        ({"content": "hello", "reply_to_author": "Bob"}, "Alice replied to Bob, hello"),
        ({"content": "hello", "is_forward": True}, "Alice forwarded a message, hello"),
        ({"attachments": [("a.png", None)]}, "Alice sent an image"),
        ({"attachments": [("a.png", None)], "reply_to_author": "Bob"}, "Alice replied to Bob with an image"),
        ({"content": "hi", "author_name": "🔥🔥 xX_Sniper_Xx"}, "fire xX Sniper Xx said, hi"),
        ({"content": "hi", "author_name": ""}, "someone said, hi"),
        ({"content": "```x```"}, "Alice said, code block"),
        ({"content": ""}, ""),
    ],
)
def test_author_prefix(fields: dict[str, object], expected: str) -> None:
    fields.setdefault("author_name", "Alice")
    assert clean_message(MessageInput(**fields), include_author=True) == expected  # type: ignore[arg-type]


def test_cap_shortens_content_and_keeps_descriptions() -> None:
    text = clean_message(
        MessageInput(content="hello world " * 100, attachments=[("a.png", None)]), CleaningOptions(max_chars=60)
    )
    assert text == "hello world hello world hello world hello and more. an image"
    assert len(text) <= 60


def test_cap_cuts_at_a_word_and_says_and_more() -> None:
    text = say("alpha beta gamma delta epsilon zeta eta theta iota kappa", CleaningOptions(max_chars=30))
    assert text == "alpha beta gamma and more"


def test_cap_applies_to_descriptions_too() -> None:
    stickers = [f"sticker{i}" for i in range(100)]
    text = clean_message(MessageInput(sticker_names=stickers), CleaningOptions(max_chars=50))
    assert len(text) <= 50 and text.endswith(" and more")


def test_skip_modes_together() -> None:
    content = "hey 👋 `code` https://example.com <:wave:1> [site](https://x.com)"
    assert say(content, SKIP_ALL) == "hey site"


@pytest.mark.parametrize("field", ["emoji_mode", "link_mode", "code_mode"])
def test_options_reject_unknown_modes(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CleaningOptions(**{field: "loud"})  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("max_chars", 0), ("max_repeat", 0)])
def test_options_reject_silly_limits(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        CleaningOptions(**{field: value})  # type: ignore[arg-type]
