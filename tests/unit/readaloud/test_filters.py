"""Which messages are read: every skip rule, the default channel, and who brings the bot along."""

from __future__ import annotations

import dataclasses

import pytest

from bot.readaloud.filters import MessageFacts, Skip, may_autojoin, read_channels, skip_reason
from bot.storage import GuildSettings

VOICE, TEXT, OTHER = 100, 200, 300
ALICE = MessageFacts(channel_id=VOICE, author_id=1, content="hello", author_voice_channel_id=VOICE)
DEFAULTS = GuildSettings()


def test_without_read_channels_the_voice_channel_chat_is_read() -> None:
    assert read_channels(DEFAULTS, VOICE) == (VOICE,)
    assert read_channels(DEFAULTS, None) == ()
    assert skip_reason(ALICE, DEFAULTS, VOICE) is None
    assert skip_reason(dataclasses.replace(ALICE, channel_id=TEXT), DEFAULTS, VOICE) is Skip.NOT_READ_CHANNEL
    assert skip_reason(ALICE, DEFAULTS, None) is Skip.NOT_IN_VOICE


def test_configured_read_channels_replace_the_voice_chat() -> None:
    configured = DEFAULTS.replace(read_channel_ids=[TEXT])
    assert skip_reason(dataclasses.replace(ALICE, channel_id=TEXT), configured, VOICE) is None
    assert skip_reason(ALICE, configured, VOICE) is Skip.NOT_READ_CHANNEL


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"is_bot": True}, Skip.BOT),
        ({"is_webhook": True}, Skip.BOT),
        ({"is_silent": True}, Skip.SILENT),
        ({"is_system": True}, Skip.SYSTEM),
        ({"content": ";not for reading"}, Skip.OPTED_OUT),
        ({"content": "  ;still opted out"}, Skip.OPTED_OUT),
        ({"author_voice_channel_id": None}, Skip.AUTHOR_NOT_IN_VOICE),
        ({"author_voice_channel_id": OTHER}, Skip.AUTHOR_NOT_IN_VOICE),
        ({"content": "a ; in the middle is fine"}, None),
    ],
)
def test_skips(changes: dict[str, object], reason: Skip | None) -> None:
    assert skip_reason(dataclasses.replace(ALICE, **changes), DEFAULTS, VOICE) is reason


def test_the_switches_turn_rules_off() -> None:
    relaxed = DEFAULTS.replace(skip_bots=False, require_author_in_voice=False, optout_prefix="")
    assert skip_reason(dataclasses.replace(ALICE, is_bot=True, author_voice_channel_id=None), relaxed, VOICE) is None
    assert skip_reason(dataclasses.replace(ALICE, is_webhook=True), relaxed, VOICE) is None
    assert skip_reason(dataclasses.replace(ALICE, content=";x", author_voice_channel_id=None), relaxed, VOICE) is None
    assert skip_reason(dataclasses.replace(ALICE, content="!x"), DEFAULTS.replace(optout_prefix="!"), VOICE) is (
        Skip.OPTED_OUT
    )


def test_roles_deny_wins_and_required_must_be_held() -> None:
    roles = DEFAULTS.replace(required_role_id=7, deny_role_id=8)
    assert skip_reason(dataclasses.replace(ALICE, role_ids=frozenset({7})), roles, VOICE) is None
    assert skip_reason(ALICE, roles, VOICE) is Skip.MISSING_ROLE
    assert skip_reason(dataclasses.replace(ALICE, role_ids=frozenset({7, 8})), roles, VOICE) is Skip.DENIED_ROLE


def test_autojoin_needs_the_switch_a_read_channel_and_a_readable_member() -> None:
    on = DEFAULTS.replace(autojoin=True, read_channel_ids=[TEXT])
    assert may_autojoin(on, is_bot=False, role_ids=frozenset())
    assert not may_autojoin(DEFAULTS.replace(autojoin=True), is_bot=False, role_ids=frozenset())
    assert not may_autojoin(DEFAULTS.replace(read_channel_ids=[TEXT]), is_bot=False, role_ids=frozenset())
    assert not may_autojoin(on, is_bot=True, role_ids=frozenset())
    assert not may_autojoin(on.replace(deny_role_id=8), is_bot=False, role_ids=frozenset({8}))
