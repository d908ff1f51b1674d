"""End to end (issue 19): a server set to Japanese, or to German, sees its commands and replies in that language
and hears that language's scaffolding around its messages.

The real bot process registers its commands with the loopback Discord (which checks them against Discord's
OpenAPI spec and naming rules); interactions carry the caller's ``locale`` as Discord's clients send it; what
the bot says around a message is observed where a provider would see it: the ``input`` of the speech requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.voice_helpers import current_session, segments, voice_bot

IMAGE = {"filename": "cat.png", "size": 1, "url": "https://cdn/cat.png", "proxy_url": "https://cdn/cat.png",
         "content_type": "image/png"}


@dataclass(frozen=True)
class Language:
    locale: str
    speak_command: str  # /speak's name in this language
    settings_changed: str  # the first line of a /settings reply
    joined: str  # the reply to /join, after the channel mention is put in
    message: str  # what Alice writes (with a link and an image)
    said: str  # what the bot sends to the speech service for it
    announced: str  # what it sends when Bob joins the voice channel


LANGUAGES = [
    Language("ja", "読み上げ", "設定を変更しました:", "🔊 {channel}に参加しました。",
             "こんにちは https://www.example.com/page", "Aliceさん、こんにちは example.comへのリンク。画像",
             "Bobさんが参加しました。"),
    Language("de", "sprechen", "Einstellungen geändert:", "🔊 {channel} beigetreten.",
             "Guten Morgen https://www.example.com/page", "Alice sagt: Guten Morgen ein Link zu example.com. ein Bild",
             "Bob ist beigetreten."),
]


@pytest.mark.parametrize("language", LANGUAGES, ids=[language.locale for language in LANGUAGES])
async def test_a_server_in_another_language_is_answered_and_read_in_it(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path, language: Language
) -> None:
    emu = discord_emulator
    async with voice_bot(emu, speech_endpoint, tmp_path):
        [speak] = [command for command in emu.commands[emu.guild.id] if command["name"] == "speak"]
        assert speak["name_localizations"][language.locale] == language.speak_command

        for command, options in (("settings language", {"language": language.locale}),
                                 ("settings announce", {"enabled": True})):
            changed = await emu.invoke(command, options, user=emu.owner, locale=language.locale)
            reply = await changed.wait_message(timeout=30)
            assert reply.ephemeral and reply.content.startswith(language.settings_changed)

        joined = await emu.invoke("join", {}, user=emu.user, channel=emu.text_channel, locale=language.locale)
        reply = await joined.wait_message(timeout=30)
        assert reply.content == language.joined.format(channel=f"<#{emu.voice_channel.id}>")
        session = await current_session(emu)

        await emu.chat.send(emu.user, emu.voice_channel, language.message, attachments=[IMAGE])
        await emu.wait_for(lambda: len(speech_endpoint.requests) >= 1, timeout=40, what="the message's speech")
        await emu.move_member(emu.other_user, emu.voice_channel)
        expected = {language.said, language.announced}
        await emu.wait_for(lambda: expected <= {request.json["input"] for request in speech_endpoint.requests},
                           timeout=40, what="the message's and the announcement's speech")
        await emu.wait_for(lambda: segments(session), timeout=40, what="the speech played in the voice channel")
        # exactly these two texts (on this shared machine a slow request may time out and be sent again)
        assert {request.json["input"] for request in speech_endpoint.requests} == expected
