"""``VoiceSessions.language_of``: the bot's own posts in a server's channels (the stage notices) follow the
server's ``/settings language``, and English when it cannot be read."""

from __future__ import annotations

import logging

import pytest

from bot.voice.sessions import VoiceLimits, VoiceSessions
from bot.voice.stage import StageRole, audience_notice

LIMITS = VoiceLimits(idle_timeout=300, alone_timeout=30, max_queue=20, stall_timeout=10)


class Channel:
    mention = "<#7>"


async def test_the_servers_language_is_used_and_english_when_it_cannot_be_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def language(guild_id: int) -> str:
        if guild_id == 2:
            raise ConnectionError("the database is down")
        return "ja"

    sessions = VoiceSessions(None, LIMITS, guild_language=language)  # type: ignore[arg-type]
    assert await sessions.language_of(1) == "ja"
    with caplog.at_level(logging.ERROR):
        assert await sessions.language_of(2) == "en"
    assert "could not read the language of guild 2" in caplog.text
    assert await VoiceSessions(None, LIMITS).language_of(1) == "en"  # type: ignore[arg-type]


def test_a_stage_notice_is_said_in_the_language_given() -> None:
    japanese = audience_notice(StageRole.REQUESTED, Channel(), "ja")  # type: ignore[arg-type]
    english = audience_notice(StageRole.REQUESTED, Channel(), "en")  # type: ignore[arg-type]
    assert english is not None and english.startswith("✋ I'm in <#7> and I've asked to speak")
    assert japanese is not None and "<#7>" in japanese and japanese != english
    assert audience_notice(StageRole.SPEAKER, Channel(), "ja") is None  # type: ignore[arg-type]
