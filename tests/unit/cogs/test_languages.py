"""Issue 19 in-process: the command surface and the replies in the caller's language, from the catalogues.

The catalogue checks need no bot: every language's catalogue must translate every message of the template
(``bot/i18n/locales/speechbot.pot``), keep its placeholders, and hold no fuzzy or empty entry. The template must
hold every message of the code and of the registered commands: with ``UPDATE_TEMPLATE=1`` the test rewrites it
instead of failing (then run ``pybabel update``, see docs/languages.md).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import cast

import discord
import pytest
import regex
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from discord import app_commands

from bot.command_translator import context_of
from bot.config import load_settings
from bot.errors import UserFacingError
from bot.i18n import LANGUAGES, Text
from bot.i18n.catalogs import catalogue_path, placeholders
from bot.i18n.extraction import TEMPLATE, code_messages, template, write_template
from bot.policy import check_speed
from bot.setting_choices import SpeechLanguage
from bot.speech.cache import Origin
from bot.speech.catalog import SpeedRange
from bot.speech.error_parsing import MSG_REJECTED, MSG_SERVER
from bot.speech.errors import SpeechRejectedError, SpeechServiceError
from bot.speech.factory import LOCAL_LABEL
from bot.speech.failover import Engine, FailoverReason, Served
from bot.speech.models import SpeechBackend, SpeechStream
from tests.support import pyast
from tests.unit.cogs.in_process import InProcessBot

#: Discord's rule for command and option names (its docs, "Application Command Naming"); lowercase where the
#: script has case.
NAME = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")


def _read(path: os.PathLike[str] | str, language: str | None = None) -> Catalog:
    with open(path, "rb") as po:
        return read_po(po, locale=LANGUAGES[language] if language else None)


def _key(message: object) -> tuple[str | None, str]:
    msgid = message.id  # type: ignore[attr-defined]
    return (message.context, msgid if isinstance(msgid, str) else msgid[0])  # type: ignore[attr-defined]


class Recorder(app_commands.Translator):
    """Notes every string discord.py asks to translate, with its context and where it sits."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], str] = {}

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        if locale is discord.Locale.japanese:
            data = context.data
            where = getattr(data, "qualified_name", None) or getattr(data, "name", None) or ""
            self.seen.setdefault((context_of(context), string.message),
                                 f"{context.location.name}: {where}")
        return None


async def surface(running: InProcessBot) -> dict[tuple[str, str], str]:
    """Every string of every registered command, as discord.py hands them to the translator."""
    recorder = Recorder()
    tree = running.bot.tree
    for command in tree.get_commands(guild=discord.Object(running.emu.guild.id)):
        await command.get_translated_payload(tree, recorder)
    return recorder.seen


async def test_the_template_holds_every_message_of_the_code_and_the_commands(in_process_bot: InProcessBot) -> None:
    seen = await surface(in_process_bot)
    assert len(seen) > 100  # every command, option, description and choice
    wanted = template([(context, message, where) for (context, message), where in seen.items()])
    if os.environ.get("UPDATE_TEMPLATE") == "1":
        write_template(wanted)
    have = {_key(m) for m in _read(TEMPLATE) if m.id}
    missing = sorted({_key(m) for m in wanted if m.id} - have, key=str)
    assert not missing, f"not in {TEMPLATE.name} (run with UPDATE_TEMPLATE=1, then pybabel update): {missing}"
    stale = sorted(have - {_key(m) for m in wanted if m.id}, key=str)
    assert not stale, f"no longer used, still in {TEMPLATE.name} (run with UPDATE_TEMPLATE=1): {stale}"


def test_the_code_marks_every_message_it_translates() -> None:
    """The extractor finds the replies, errors and spoken phrases (a sample of each kind)."""
    found = {_key(m)[1] for m in code_messages() if m.id}
    assert {"Join a voice channel first, then try again.", "{name} said", "a link to {host}", "{count} image",
            "Settings changed:", "Something went wrong on my side. Please try again."} <= found


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_catalogue_translates_every_message_with_its_placeholders(language: str) -> None:
    wanted = {_key(m): m for m in _read(TEMPLATE) if m.id}
    catalogue = _read(catalogue_path(language), language)
    problems: list[str] = []
    entries = {_key(m): m for m in catalogue if m.id}
    for key, source in wanted.items():
        entry = entries.get(key)
        if entry is None:
            problems.append(f"missing: {key}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {key}")
        forms = [entry.string] if isinstance(entry.string, str) else list(entry.string)
        expected = set().union(*(placeholders(text) for text in
                                 ([source.id] if isinstance(source.id, str) else source.id)))
        for form in forms:
            if not form:
                problems.append(f"empty: {key}")
            elif placeholders(form) != expected:
                problems.append(f"placeholders {sorted(placeholders(form))} instead of {sorted(expected)}: {key}")
        if isinstance(source.id, tuple) and len(forms) != catalogue.num_plurals:
            problems.append(f"{len(forms)} plural forms instead of {catalogue.num_plurals}: {key}")
        context = key[0]
        if context == "name" and not all(NAME.match(f) and f == f.lower() for f in forms):
            problems.append(f"not a valid Discord command or option name: {forms}")
        limit = 32 if context == "name" else 100
        if context in ("name", "description", "choice", "menu") and any(len(f) > limit for f in forms):
            problems.append(f"longer than {limit}: {forms}")
    assert not problems, f"{catalogue_path(language)}:\n" + "\n".join(problems)


async def test_commands_are_registered_with_every_languages_names_and_descriptions(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    [speak] = [c for c in emu.commands[emu.guild.id] if c["name"] == "speak"]
    assert set(speak["name_localizations"]) >= {"ja", "ko", "de", "fr", "es-ES", "pt-BR"}
    assert speak["name_localizations"]["ja"] == "読み上げ"
    assert speak["description_localizations"]["de"].startswith("Text ")
    [settings] = [c for c in emu.commands[emu.guild.id] if c["name"] == "settings"]
    [language] = [o for o in settings["options"] if o["name"] == "language"]
    assert language["name_localizations"]["ja"] == "言語"
    [option] = language["options"]
    assert [choice["value"] for choice in option["choices"]] == [language.value for language in SpeechLanguage]


async def test_a_japanese_caller_gets_japanese_replies_and_an_english_one_english(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    refused = await emu.invoke("skip", locale="ja")
    assert (await refused.wait_message()).content == "ボイスチャンネルにいません。"
    english = await emu.invoke("skip", locale="en-GB")
    assert (await english.wait_message()).content == "I'm not in a voice channel."


async def test_a_moderator_sets_the_servers_spoken_language_in_german(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    changed = await emu.invoke("settings language", {"language": "de"}, user=emu.owner, locale="de")
    reply = await changed.wait_message()
    assert reply.ephemeral and reply.content.startswith("Einstellungen geändert:")
    assert (await in_process_bot.store.get_guild_settings(emu.guild.id)).language is SpeechLanguage.DE


async def test_a_caller_in_a_language_without_catalogue_gets_the_servers(in_process_bot: InProcessBot) -> None:
    """Italian has no catalogue: the server's locale (Korean here) is the next best guess, then English."""
    emu = in_process_bot.emu
    emu.guild.preferred_locale = "ko"
    refused = await emu.invoke("skip", locale="it")
    assert (await refused.wait_message()).content == "음성 채널에 있지 않아요."


async def test_read_aloud_asks_for_speech_in_the_servers_language(in_process_bot: InProcessBot) -> None:
    """The request carries the language, so the offline engine can pick that language's voice (LOCAL_VOICES)."""
    emu, speech = in_process_bot.emu, in_process_bot.speech
    await in_process_bot.store.update_guild_settings(emu.guild.id, language=SpeechLanguage.JA)
    joined = await emu.invoke("join", {}, locale="ja")
    assert (await joined.wait_message(timeout=20)).content == f"🔊 <#{emu.voice_channel.id}>に参加しました。"
    await emu.chat.send(emu.user, emu.voice_channel, "こんにちは")
    await emu.wait_for(lambda: speech.requests, timeout=20, what="the message's speech request")
    assert {(request.text, request.language) for request in speech.requests} == {("Aliceさん、こんにちは", "ja")}


async def test_speak_in_a_server_set_to_german_asks_for_german_speech(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    await (await emu.invoke("speak", {"text": "before"})).wait_message(timeout=20)
    await in_process_bot.store.update_guild_settings(emu.guild.id, language=SpeechLanguage.DE)
    await (await emu.invoke("speak", {"text": "Guten Morgen"})).wait_message(timeout=20)  # the bot is done with it
    assert [(request.text, request.language) for request in speech.requests] == [("before", None),
                                                                                  ("Guten Morgen", "de")]


# -- speech errors: the caller's language, whatever the engine said ----------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("ja", "音声サービスに問題が起きています。後でもう一度どうぞ。"),
        ("de", "Der Sprachdienst hat Probleme. Versuch es später noch einmal."),
        ("en-US", MSG_SERVER),
    ],
)
async def test_a_speech_error_is_said_in_the_callers_language(
    in_process_bot: InProcessBot, locale: str, expected: str
) -> None:
    emu = in_process_bot.emu
    in_process_bot.speech.errors.append(SpeechServiceError(MSG_SERVER, status=503, retryable=True))
    reply = await (await emu.invoke("speak", {"text": "hello"}, locale=locale)).wait_message()
    assert reply.ephemeral and reply.content == expected


async def test_a_speech_error_with_details_keeps_the_services_own_words(in_process_bot: InProcessBot) -> None:
    """The bot's words are translated; what the speech server said (its reason) is shown as it said it."""
    emu = in_process_bot.emu
    in_process_bot.speech.errors.append(
        SpeechRejectedError(Text(MSG_REJECTED, {"detail": "voice 'zz' is not loaded"}), status=400)
    )
    reply = await (await emu.invoke("speak", {"text": "hello"}, locale="de")).wait_message()
    assert reply.content == "Der Sprachdienst hat die Anfrage abgelehnt: voice 'zz' is not loaded"


async def test_a_refused_text_is_explained_in_the_callers_language(in_process_bot: InProcessBot) -> None:
    reply = await (await in_process_bot.emu.invoke("speak", {"text": "\u200b"}, locale="ja")).wait_message()
    assert reply.ephemeral and reply.content == "読み上げるものがありません: テキストが見えない文字だけです。"


async def test_a_failure_in_the_voice_channel_is_reported_to_the_requester_in_their_language(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    await (await emu.invoke("join", {})).wait_message(timeout=20)
    in_process_bot.speech.errors.append(SpeechServiceError(MSG_SERVER, status=503, retryable=True))
    interaction = await emu.invoke("speak", {"text": "hello there", "output": "voice"}, locale="de")
    await interaction.wait_message(timeout=10)
    reason = await interaction.wait_message(timeout=20, index=1)
    assert reason.ephemeral and reason.content == "Der Sprachdienst hat Probleme. Versuch es später noch einmal."


# -- a member's own settings: /voice show, /voice set, the picker, /voices, /forgetme --------------------------------


async def test_voice_show_is_in_the_callers_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    await (await emu.invoke("voice set", {"voice": "echo", "speed": 1.5}, locale="de")).wait_message()
    shown = (await (await emu.invoke("voice show", {}, locale="ja")).wait_message()).content
    assert shown.splitlines() == [
        "**ここでのあなたの読み上げ:**",
        "• 声: echo（あなたの選択）",  # noqa: RUF001 - Japanese parentheses
        "• 速さ: 1.5×（あなたの選択）",  # noqa: RUF001 - Japanese parentheses
        "• 指示: なし（ボットの既定）",  # noqa: RUF001 - Japanese parentheses
        "• 読み上げ名: このサーバーでのあなたの名前",
    ]
    german = (await (await emu.invoke("voice show", {}, locale="de")).wait_message()).content
    assert "• Geschwindigkeit: 1,5× (deine Wahl)" in german.splitlines()


async def test_voice_set_and_its_picker_are_in_the_callers_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    menu = await (await emu.invoke("voice set", {"speed": 1.25}, locale="de")).wait_message()
    assert menu.content == "Gespeichert auf diesem Server:\n• Geschwindigkeit: 1,25×\n\nWähle deine Stimme:"
    [select] = [c for row in menu.components for c in row.get("components", [])]
    assert select["placeholder"] == "Wähle deine Stimme"
    await (await emu.select(menu, select["custom_id"], ["nova"])).wait_message()
    assert menu.content == "Gespeichert auf diesem Server: Deine Stimme ist jetzt **nova**."
    japanese = await (await emu.invoke("voice set", {}, locale="ja")).wait_message()
    assert japanese.content == "声を選んでください:"


async def test_voices_and_forgetme_are_in_the_callers_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    voices = (await (await emu.invoke("voices", {}, locale="ja")).wait_message()).content.splitlines()
    assert voices[0] == "**声:**" and voices[1] == "• alloy (ボットの既定, ここでのあなたの声)"
    assert voices[-1] == "/voice set で自分の声を選べます。"
    forgotten = (await (await emu.invoke("forgetme", {}, locale="de")).wait_message()).content
    assert forgotten.startswith("Alles, was über dich gespeichert war, wurde auf allen Servern gelöscht:\n")


async def test_usage_is_in_the_callers_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    await in_process_bot.store.update_guild_settings(emu.guild.id, daily_char_budget=1000)
    await (await emu.invoke("speak", {"text": "hello there"})).wait_message()
    japanese = (await (await emu.invoke("usage", {}, locale="ja")).wait_message()).content.splitlines()
    assert japanese[:2] == ["**このサーバーの読み上げ使用量**（日と月はUTC）",  # noqa: RUF001 - Japanese parentheses
                            "今日: 1リクエストで11文字、予算1,000文字中（残り989文字）"]  # noqa: RUF001
    german = (await (await emu.invoke("usage", {}, locale="de")).wait_message()).content.splitlines()
    assert german[1] == "Heute: 11 Zeichen in 1 Anfrage von einem Budget von 1.000 (989 übrig)"
    assert german[3] == "Du diesen Monat: 11 Zeichen"


def test_the_fallback_note_under_speak_is_in_the_callers_language() -> None:
    offline = Engine("local", LOCAL_LABEL, "local", cast(SpeechBackend, None))
    served = Served(cast(SpeechStream, None), Origin.SENT, offline, FailoverReason.OUTAGE)
    assert served.note("marin") == (
        "Said by the offline voice instead of marin, because the speech service is not answering right now."
    )
    assert served.note("marin", "ja") == (
        "marinの代わりにオフラインの音声が読み上げました（音声サービスが今応答していないため）。"  # noqa: RUF001
    )
    assert served.note("marin", "de") == (
        "Gesprochen von der Offline-Stimme statt marin, weil der Sprachdienst gerade nicht antwortet."
    )


@pytest.mark.parametrize(
    ("locale", "title", "apps"), [("ja", "できること", "アプリ → "), ("de", "Was ich kann", "Apps → ")]
)
async def test_help_is_in_the_callers_language_with_the_descriptions_their_client_shows(
    in_process_bot: InProcessBot, locale: str, title: str, apps: str
) -> None:
    emu = in_process_bot.emu
    reply = await (await emu.invoke("help", {}, user=emu.user, locale=locale)).wait_message()
    assert reply.embeds[0]["title"] == title
    text = "\n".join(embed.get("description", "") for embed in reply.embeds)
    [speak] = [c for c in emu.commands[emu.guild.id] if c["name"] == "speak"]
    assert f"`/speak` — {speak['description_localizations'][locale]}" in text.splitlines()
    menus = [c for c in emu.commands[emu.guild.id] if c.get("type", 1) != 1]
    assert menus and all(f"**{apps}{menu['name_localizations'][locale]}**" in text for menu in menus)
    assert text.splitlines()[-1].startswith("🔒 ")


async def test_a_saved_voice_no_longer_offered_is_explained_in_the_callers_language(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    await in_process_bot.store.set_user_prefs(emu.user.id, emu.guild.id, voice="zeus")
    shown = (await (await emu.invoke("voice show", {}, locale="de")).wait_message()).content
    assert shown.endswith(
        "\n\nDeine Stimme 'zeus' wird nicht mehr angeboten, darum bekommst du jetzt den Standard dieses Servers "
        "(alloy). Wähle eine andere mit /voice set."
    )


# -- /settings: the show embed and the "Settings changed" lines, for moderators --------------------------------------


async def test_settings_show_is_in_the_moderators_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    reply = await (await emu.invoke("settings show", {}, user=emu.owner, locale="ja")).wait_message()
    [embed] = reply.embeds
    assert embed["title"] == f"{emu.guild.name}の読み上げ設定"
    fields = {field["name"]: field["value"].splitlines() for field in embed["fields"]}
    assert list(fields)[:2] == ["話すときの既定値", "読み上げ"]
    assert fields["話すときの既定値"][:3] == [
        "**既定の声:** ボットの既定値（alloy）",  # noqa: RUF001 - Japanese parentheses
        "**メンバーごとの声:** オフ: 既定の声を使う",
        "**既定の速さ:** 1×",
    ]
    assert "**/speak の出力:** ファイル" in fields["話すときの既定値"]
    assert "**読み上げチャンネル:** なし（読み上げはオフ）" in fields["読み上げ"]  # noqa: RUF001
    assert "**1日の予算:** 制限なし" in fields["制限"]
    server = fields["音声サーバー（ボットのもの、すべてのサーバー共通）"]  # noqa: RUF001
    assert server[0] == "• 声: モデルの既定の一覧から6種類" and "• 速さの範囲: 未測定" in server
    english = await (await emu.invoke("settings show", {}, user=emu.owner, locale="en-US")).wait_message()
    assert english.embeds[0]["title"] == f"Text-to-speech settings of {emu.guild.name}"
    assert english.embeds[0]["fields"][0]["value"].startswith("**Default voice:** bot default (alloy)\n")


async def test_a_settings_change_is_described_in_the_moderators_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    changed = await emu.invoke("settings defaults", {"speed": 1.5}, user=emu.owner, locale="de")
    assert (await changed.wait_message()).content == "Einstellungen geändert:\n• Standardgeschwindigkeit: 1× → 1,5×"
    again = await emu.invoke("settings defaults", {"speed": 1.5}, user=emu.owner, locale="de")
    assert (await again.wait_message()).content == "Einstellungen geändert:\n• Standardgeschwindigkeit: bereits 1,5×"
    japanese = await emu.invoke("settings reset", {"setting": "default_speed"}, user=emu.owner, locale="ja")
    assert (await japanese.wait_message()).content == "設定を変更しました:\n• 既定の速さ: 1.5× → 1×"


@pytest.mark.parametrize(
    ("locale", "notice"),
    [
        ("ja", "このボットの音声サーバーの速さは0.5〜2だけなので、4×は2×に聞こえます。"),
        ("de", "Der Sprachserver dieses Bots spricht nur mit Geschwindigkeiten von 0,5 bis 2, darum klingt 4× wie 2×."),
    ],
)
async def test_the_speech_servers_speed_notice_is_in_the_callers_language(
    in_process_bot: InProcessBot, locale: str, notice: str
) -> None:
    emu = in_process_bot.emu
    in_process_bot.services.capabilities.speeds = SpeedRange(0.5, 2.0)
    interaction = await emu.invoke("speak", {"text": "quickly now", "speed": 4.0}, locale=locale)
    await interaction.wait_message()
    assert (await interaction.wait_message(index=1)).content == notice
    shown = await (await emu.invoke("settings show", {}, user=emu.owner, locale=locale)).wait_message()
    server = shown.embeds[0]["fields"][-1]["value"].splitlines()
    assert server[3] == ("• 速さの範囲: 0.5〜2（測定）" if locale == "ja"  # noqa: RUF001 - Japanese parentheses
                         else "• Geschwindigkeitsbereich: 0,5 bis 2 (gemessen)")


async def test_the_owners_replies_are_in_their_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu

    async def owner(command: str, options: dict[str, object], locale: str) -> str:
        return (await (await emu.invoke(command, options, user=emu.owner, locale=locale)).wait_message()).content

    assert await owner("owner block user", {"user": emu.user}, "de") == (
        f"<@{emu.user.id}> ist jetzt für den ganzen Bot gesperrt: Nachrichten werden nie vorgelesen, und jeder Befehl "
        "bekommt eine Zeile als Antwort.")
    assert (await owner("owner blocked", {}, "ja")).splitlines() == [
        "**ブロック中のユーザー**（1）:", f"<@{emu.user.id}> ({emu.user.id})",  # noqa: RUF001 - Japanese parentheses
        "**ブロック中のサーバー**（0）:", "なし",  # noqa: RUF001 - Japanese parentheses
    ]
    assert await owner("owner unblock server", {"server": "123"}, "de") == "Server 123 war nicht gesperrt."
    assert await owner("owner engine disable", {"name": "scripted"}, "ja") == (
        "scriptedをオフにしました。"
        "エンジンが残っていません: どれかを有効にするまで、読み上げのリクエストはすべて拒否されます。")
    english = await owner("owner engine enable", {"name": "scripted"}, "en-US")
    assert english == "Switched scripted on."


async def test_owner_stats_are_in_the_owners_language(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    await in_process_bot.store.update_guild_settings(emu.guild.id, daily_char_budget=1000)
    await (await emu.invoke("speak", {"text": "count me"})).wait_message()
    reply = await (await emu.invoke("owner stats", {}, user=emu.owner, locale="ja")).wait_message()
    lines = reply.content.strip("`\n").splitlines()
    assert lines[0] == "稼働中（起動以降のこのプロセス）:"  # noqa: RUF001 - Japanese parentheses
    assert "  サーバー: 1   ボイス接続: 0" in lines and "  エンジンごとのリクエスト: scripted 成功1 / 失敗0" in lines
    assert "  今日（UTC）: 音声サービスへの1リクエストで8文字" in lines  # noqa: RUF001 - Japanese parentheses
    assert f"  予算の使用: サーバー {emu.guild.id}: 今日 8/1000" in lines
    german = await (await emu.invoke("owner stats", {}, user=emu.owner, locale="de")).wait_message()
    assert "  ausgeschaltete Engines: keine" in german.content.splitlines()


# -- no reply left in English: a literal sent by a cog must go through the catalogues ---------------------------------

#: Calls that put text in front of a member: replies, edits, embeds and their fields, autocomplete choices.
SENDING = {"send_message", "send", "reply_ephemeral", "send_ephemeral", "edit_message", "edit_original_response",
           "edit", "Embed", "add_field", "set_footer", "set_author", "Choice", "_tell", "reply"}
#: Calls whose literals are catalogue messages (what the extractor collects), or Discord's own translation.
TRANSLATING = {"tr", "tr_plural", "translate", "translate_plural", "surface_text", "N_", "UserFacingError"}
#: Keyword arguments that are never read by a member.
NOT_TEXT = {"custom_id", "value", "style", "emoji", "url", "colour", "color"}
WORD = regex.compile(r"[A-Za-z]{2,}")


def _called(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _untranslated(node: ast.AST) -> list[ast.Constant]:
    if isinstance(node, ast.Call) and _called(node.func) in TRANSLATING:
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    return [found for child in ast.iter_child_nodes(node) for found in _untranslated(child)]


def english_literals(source: str) -> list[str]:
    """"line: text" for every literal with a word in it that a function of ``source`` sends without a catalogue
    (module-level choices are the command surface, translated at sync)."""
    found = []
    for function in ast.walk(pyast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and _called(call.func) in SENDING):
                continue
            arguments = [*call.args, *(k.value for k in call.keywords if k.arg not in NOT_TEXT)]
            found += [f"{literal.lineno}: {literal.value}" for argument in arguments
                      for literal in _untranslated(argument) if WORD.search(literal.value)]
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def test_english_literals_are_found_in_a_cogs_replies() -> None:
    source = """
async def handler(interaction):
    await interaction.response.send_message("Done.", ephemeral=True)
    await reply_ephemeral(interaction, f"Blocked {user}." if changed else tr(interaction, "Unblocked {user}."))
    embed = discord.Embed(title=tr(interaction, "Settings"))
    embed.add_field(name="Speech server", value=text)
    await interaction.followup.send(f"```\\n{text}\\n```", ephemeral=True)
"""
    assert english_literals(source) == ["3: Done.", "4: Blocked ", "6: Speech server"]


def test_no_cog_sends_an_english_only_literal() -> None:
    root = Path(__file__).resolve().parents[3]
    found = {path.relative_to(root).as_posix(): english_literals(path.read_text())
             for path in sorted((root / "cogs").rglob("*.py"))}
    assert {path: literals for path, literals in found.items() if literals} == {}


def test_a_refused_speed_gives_the_range_in_the_callers_words() -> None:
    realtime = load_settings({"SPEECH_API_KEY": "sk-x", "SPEECH_MODEL": "gpt-realtime-2.1-mini"})
    with pytest.raises(UserFacingError) as refused:
        check_speed(realtime, 1.75)
    assert refused.value.message == "This bot's voice engine speaks at speeds from 0.25 to 1.5, not 1.75."
    assert refused.value.localized("de") == (
        "Die Sprachausgabe dieses Bots spricht mit Geschwindigkeiten von 0,25 bis 1,5, nicht 1,75.")
    assert refused.value.localized("ja") == "このボットの音声エンジンの速さは0.25〜1.5です（1.75は使えません）。"  # noqa: RUF001
