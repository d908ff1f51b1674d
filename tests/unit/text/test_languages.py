"""What read-aloud says around a message, in the server's language (``CleaningOptions.language``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.setting_choices import SpeechLanguage
from bot.text import CleaningOptions, MessageInput, clean_message

IMAGE = ("cat.png", "image/png")


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Alice said, look a link to example.com thumbs up. 2 images and a file"),
    ("ja", "Aliceさん、look example.comへのリンク サムズアップ。画像2枚、ファイル"),
    ("ko", "Alice님, look example.com 링크 올린 엄지. 이미지 2장 및 파일"),
    ("de", "Alice sagt: look ein Link zu example.com daumen hoch. 2 Bilder und eine Datei"),
    ("fr", "Alice a dit: look un lien vers example.com pouce vers le haut. 2 images et un fichier"),
    ("es-ES", "Alice dijo: look un enlace a example.com pulgar hacia arriba. 2 imágenes y un archivo"),
    ("pt-BR", "Alice disse: look um link para example.com polegar para cima. 2 imagens e um arquivo"),
])
def test_the_scaffolding_links_emoji_and_attachments_are_in_the_servers_language(language: str, expected: str) -> None:
    message = MessageInput(content="look https://www.example.com/x 👍", author_name="Alice",
                           attachments=[IMAGE, IMAGE, ("notes.txt", None)])
    assert clean_message(message, CleaningOptions(language=language), include_author=True) == expected


def test_replies_forwards_stickers_polls_and_unknown_mentions_in_japanese() -> None:
    options = CleaningOptions(language="ja")
    reply = MessageInput(content="", author_name="Alice", reply_to_author="Bob", attachments=[IMAGE])
    assert clean_message(reply, options, include_author=True) == "AliceさんがBobさんに返信、画像"
    sticker = MessageInput(author_name="Alice", sticker_names=["wave"])
    assert clean_message(sticker, options, include_author=True) == "Aliceさんがスタンプ、waveを送信"
    poll = MessageInput(content="<@1> <#2>", author_name="Alice", poll_question="ramen?")
    assert clean_message(poll, options) == "だれか チャンネル。投票、ramen?"
    forwarded = MessageInput(content="```x```", is_forward=True)
    assert clean_message(forwarded, options) == "転送されたメッセージ: コードブロック"


def test_numbers_and_dates_follow_the_language_and_english_stays_as_it_was() -> None:
    message = MessageInput(content="5 * 3 at <t:1709647500:F>, <t:1709647500:R>",
                           created_at=datetime(2024, 3, 7, tzinfo=UTC))
    assert clean_message(message) == "5 times 3 at Tuesday, March 5, 2024 at 14:05 UTC, 1 day ago"
    assert clean_message(message, CleaningOptions(language="de")) == (
        "5 mal 3 at Dienstag, 5. März 2024 14:05 UTC, vor 1 Tag")


def test_a_long_message_is_cut_with_the_languages_and_more() -> None:
    message = MessageInput(content=" ".join(f"mot{n}" for n in range(100)), author_name="Alice")
    spoken = clean_message(message, CleaningOptions(language="fr", max_chars=60), include_author=True)
    assert spoken.startswith("Alice a dit: mot0 mot1") and spoken.endswith(" et plus") and len(spoken) <= 60


@pytest.mark.parametrize("language", [language.value for language in SpeechLanguage])
def test_cleaning_in_every_language_is_idempotent_on_its_own_output(language: str) -> None:
    """The phrases a catalogue adds survive being cleaned again (no markup, nothing the cleaner rewrites)."""
    options = CleaningOptions(language=language)
    message = MessageInput(content="hi https://x.com ||s|| ```c``` 😂😂", attachments=[IMAGE], sticker_names=["a"],
                           has_poll=True, embeds=1, reply_to_author="Bob")
    spoken = clean_message(message, options)
    assert clean_message(MessageInput(content=spoken), options) == spoken
