"""``bot.policy`` and ``bot.settings_view``: the pure rules, without Discord or a database."""

from __future__ import annotations

from datetime import date

import pytest

from bot.audio.formats import AudioFormat
from bot.config import load_settings
from bot.errors import UserFacingError
from bot.permissions import is_moderator
from bot.policy import Policy, RateLimiter, check_roles, check_speed, distinct_voice, resolve_options
from bot.settings_view import SECTIONS, describe_changes, labels, render_sections
from bot.storage import GuildSettings, Store, UserPrefs
from bot.storage.models import SpeakOutput
from bot.usage import UsageLedger, check_budgets

BOT = load_settings({"SPEECH_VOICES": "alloy,nova,echo", "SPEECH_DEFAULT_FORMAT": "wav"})


def test_an_explicit_choice_beats_the_user_who_beats_the_server_who_beats_the_bot() -> None:
    guild = GuildSettings(default_voice="echo", default_speed=1.5, default_format=AudioFormat.FLAC,
                          default_instructions="calm", speak_output=SpeakOutput.BOTH)
    assert resolve_options(BOT, GuildSettings(), UserPrefs()) == resolve_options(
        BOT, GuildSettings(), UserPrefs(), voice=None, speed=None
    )
    bare = resolve_options(BOT, GuildSettings(), UserPrefs())
    assert (bare.voice, bare.speed, bare.format, bare.instructions, bare.output) == (
        "alloy", 1.0, AudioFormat.WAV, None, SpeakOutput.FILE)
    server = resolve_options(BOT, guild, UserPrefs())
    assert (server.voice, server.speed, server.format, server.instructions, server.output) == (
        "echo", 1.5, AudioFormat.FLAC, "calm", SpeakOutput.BOTH)
    user = resolve_options(BOT, guild, UserPrefs(voice="nova", speed=0.5, instructions="fast"))
    assert (user.voice, user.speed, user.instructions) == ("nova", 0.5, "fast")
    asked = resolve_options(BOT, guild, UserPrefs(voice="nova"), voice="alloy", speed=2.0,
                            format=AudioFormat.OPUS, instructions="loud", output=SpeakOutput.FILE)
    assert (asked.voice, asked.speed, asked.format, asked.instructions, asked.output) == (
        "alloy", 2.0, AudioFormat.OPUS, "loud", SpeakOutput.FILE)
    assert asked.notice is None


def test_distinct_voices_are_derived_from_the_id_the_same_in_every_process_and_any_voice_order() -> None:
    # Pinned values: Python's salted hash() would give others in another process (PYTHONHASHSEED).
    voices = ["alloy", "nova", "echo"]
    assert [distinct_voice(i, voices) for i in (5, 6, 1, 123456789012345678, 987654321098765432)] == [
        "nova", "alloy", "echo", "alloy", "nova"]
    assert distinct_voice(987654321098765432, reversed(voices)) == "nova"
    assert distinct_voice(987654321098765432, ["nova"]) == "nova"
    with pytest.raises(ValueError):
        distinct_voice(1, [])


def test_distinct_voices_give_members_without_a_voice_their_own_and_leave_choices_alone() -> None:
    guild = GuildSettings(default_voice="echo", distinct_voices=True)
    assert resolve_options(BOT, guild, UserPrefs(), member_id=5).voice == "nova"
    assert resolve_options(BOT, guild, UserPrefs(), member_id=6).voice == "alloy"
    assert resolve_options(BOT, guild, UserPrefs(), member_id=6, voice="echo").voice == "echo"  # asked for
    assert resolve_options(BOT, guild, UserPrefs(voice="echo"), member_id=6).voice == "echo"  # their choice
    assert resolve_options(BOT, guild, UserPrefs()).voice == "echo"  # nobody in particular: the server's
    assert resolve_options(BOT, GuildSettings(default_voice="echo"), UserPrefs(), member_id=6).voice == "echo"
    stale = resolve_options(BOT, guild, UserPrefs(voice="shimmer"), member_id=6)  # no longer offered
    assert stale.voice == "alloy" and stale.notice is not None and "(alloy)" in stale.notice
    only = load_settings({"SPEECH_VOICES": "nova", "SPEECH_DEFAULT_FORMAT": "wav"})
    assert resolve_options(only, guild, UserPrefs(), member_id=6).voice == "nova"  # only what the engine offers


def test_a_voice_no_longer_offered_falls_back_with_a_notice() -> None:
    options = resolve_options(BOT, GuildSettings(default_voice="echo"), UserPrefs(voice="shimmer", speed=2.0))
    assert (options.voice, options.speed) == ("echo", 2.0)
    assert options.notice is not None
    assert "'shimmer' is no longer offered" in options.notice and "(echo)" in options.notice
    # a server default that is gone falls back to the bot's, quietly (moderators see it in /settings show)
    options = resolve_options(BOT, GuildSettings(default_voice="shimmer"), UserPrefs())
    assert (options.voice, options.notice) == ("alloy", None)


def test_roles_refuse_the_denied_and_those_without_the_required_role() -> None:
    check_roles(GuildSettings(), [])
    check_roles(GuildSettings(required_role_id=5, deny_role_id=6), [5, 7])
    with pytest.raises(UserFacingError, match="<@&6> role cannot"):
        check_roles(GuildSettings(required_role_id=5, deny_role_id=6), [5, 6])
    with pytest.raises(UserFacingError, match="need the <@&5> role"):
        check_roles(GuildSettings(required_role_id=5), [7])


def test_budgets_refuse_what_would_go_over_and_say_what_is_left() -> None:
    guild = GuildSettings(daily_char_budget=100, monthly_char_budget=1000)
    check_budgets(guild, 40, used_today=60, used_this_month=960)
    check_budgets(GuildSettings(), 10**6, used_today=10**9, used_this_month=10**9)
    with pytest.raises(UserFacingError, match="only 40 are left in this server's daily"):
        check_budgets(guild, 41, used_today=60, used_this_month=0)
    with pytest.raises(UserFacingError, match=r"used its daily speech budget \(100 of 100 characters\)"):
        check_budgets(guild, 1, used_today=100, used_this_month=100)
    with pytest.raises(UserFacingError, match="monthly"):
        check_budgets(guild, 50, used_today=0, used_this_month=990)


def test_the_rate_limiter_is_a_sliding_window_per_server_and_member() -> None:
    now = [0.0]
    limiter = RateLimiter(window=60, clock=lambda: now[0])
    limiter.admit(1, 10, 60, limit=100)
    now[0] = 30
    limiter.admit(1, 10, 40, limit=100)
    limiter.admit(2, 10, 100, limit=100)  # another server
    limiter.admit(1, 11, 100, limit=100)  # another member
    with pytest.raises(UserFacingError, match="Try again in 30 s"):
        limiter.admit(1, 10, 1, limit=100)
    with pytest.raises(UserFacingError, match="allows each member 100 per minute"):
        limiter.admit(1, 12, 101, limit=100)
    now[0] = 60
    limiter.admit(1, 10, 60, limit=100)  # the first 60 expired; the refused ones never counted
    limiter.forget_user(11)
    limiter.admit(1, 11, 100, limit=100)


def test_moderators_have_manage_server_or_the_moderator_role() -> None:
    assert is_moderator(manage_guild=True, role_ids=[], moderator_role_id=None)
    assert is_moderator(manage_guild=False, role_ids=[3, 4], moderator_role_id=4)
    assert not is_moderator(manage_guild=False, role_ids=[3], moderator_role_id=4)
    assert not is_moderator(manage_guild=False, role_ids=[], moderator_role_id=None)


def test_show_covers_every_setting_once_and_changes_read_old_to_new() -> None:
    shown = [field for _, fields in SECTIONS for field in fields]
    assert sorted(shown) == sorted(labels(BOT)) == sorted(GuildSettings.__dataclass_fields__)
    sections = dict(render_sections(BOT, GuildSettings(read_channel_ids=(7, 8), deny_role_id=9)))
    assert "**Read channels:** <#7> <#8>" in sections["Read-aloud"]
    assert "**Denied role:** <@&9>" in sections["Access"]
    assert "**Daily budget:** no limit" in sections["Limits"]
    assert all(len(text) <= 1024 for text in sections.values())
    many = dict(render_sections(BOT, GuildSettings(read_channel_ids=tuple(range(10**17, 10**17 + 50)))))
    assert "and 30 more" in many["Read-aloud"] and len(many["Read-aloud"]) <= 1024
    before, after = GuildSettings(), GuildSettings(daily_char_budget=5000, default_speed=1.25)
    assert describe_changes(BOT, before, after, ["daily_char_budget", "default_speed", "autojoin"]) == [
        "Daily budget: no limit → 5,000 characters",
        "Default speed: 1× → 1.25×",
        "Auto-join: already off",
    ]


async def test_usage_is_counted_per_utc_day_and_month_against_the_budgets(store: Store) -> None:
    day = [date(2026, 3, 31)]
    ledger = UsageLedger(store, today=lambda: day[0])
    guild = await store.update_guild_settings(1, daily_char_budget=100, monthly_char_budget=150)
    await ledger.settle(await ledger.reserve(1, 10, 100, guild))
    with pytest.raises(UserFacingError, match="daily"):
        await ledger.reserve(1, 11, 1, guild)
    day[0] = date(2026, 4, 1)  # a new day and a new month
    await ledger.settle(await ledger.reserve(1, 11, 100, guild))
    with pytest.raises(UserFacingError, match="only 50 are left in this server's monthly"):
        await ledger.reserve(1, 10, 51, await store.update_guild_settings(1, daily_char_budget=None))
    assert (await store.usage_since(1, date(2026, 3, 1))).characters == 200  # written to the store


async def test_mutes_and_roles_are_checked_from_the_store(store: Store) -> None:
    policy = Policy(BOT, store)
    await store.update_guild_settings(1, deny_role_id=6)
    assert (await policy.check_member(1, 10, [5])).deny_role_id == 6
    with pytest.raises(UserFacingError, match="role cannot"):
        await policy.check_member(1, 10, [6])
    await store.mute(1, 10, by=99)
    with pytest.raises(UserFacingError, match="muted you"):
        await policy.check_member(1, 10, [])
    await policy.check_member(2, 10, [])  # muted in one server only


async def test_a_stale_stored_voice_is_cleared_so_the_user_is_told_once(store: Store) -> None:
    policy = Policy(BOT, store)
    await store.set_user_prefs(10, None, voice="shimmer", speed=1.5)
    await store.set_user_prefs(10, 1, voice="onyx")
    first = await policy.options_for(1, 10, GuildSettings())
    assert first.voice == "alloy" and first.notice is not None and first.speed == 1.5
    second = await policy.options_for(1, 10, GuildSettings())
    assert second.voice == "alloy" and second.notice is None and second.speed == 1.5
    assert (await store.get_user_prefs(10, None)) == UserPrefs(speed=1.5)


REALTIME = load_settings({"SPEECH_API_KEY": "sk-x", "SPEECH_MODEL": "gpt-realtime-2.1-mini"})


def test_saved_choices_the_realtime_engine_does_not_offer_fall_back_to_the_server_default_with_a_notice() -> None:
    guild = GuildSettings(default_voice="marin", default_speed=1.25)
    options = resolve_options(REALTIME, guild, UserPrefs(voice="nova", speed=2.0))
    assert (options.voice, options.speed) == ("marin", 1.25)
    assert options.notice is not None
    assert "'nova' is no longer offered" in options.notice and "2× is more than" in options.notice
    assert "0.25 to 1.5" in options.notice
    # a server default the engine cannot do gives the bot's, silently (as a server voice no longer offered does)
    fast_server = resolve_options(REALTIME, GuildSettings(default_voice="onyx", default_speed=3.0), UserPrefs())
    assert (fast_server.voice, fast_server.speed, fast_server.notice) == ("alloy", 1.0, None)
    # what is asked explicitly is left for validation to refuse, never clamped
    assert resolve_options(REALTIME, guild, UserPrefs(), speed=3.0).speed == 3.0


def test_check_speed_refuses_what_the_engine_cannot_do() -> None:
    check_speed(REALTIME, 1.5)
    check_speed(BOT, 4.0)
    with pytest.raises(UserFacingError) as info:
        check_speed(REALTIME, 1.75)
    assert "from 0.25 to 1.5, not 1.75" in info.value.message


async def test_a_stale_stored_speed_is_cleared_so_the_user_is_told_once(store: Store) -> None:
    policy = Policy(REALTIME, store)
    await store.set_user_prefs(10, None, speed=3.0, instructions="calm")
    first = await policy.options_for(1, 10, GuildSettings())
    assert first.speed == 1.0 and first.notice is not None and "3×" in first.notice
    second = await policy.options_for(1, 10, GuildSettings())
    assert second.speed == 1.0 and second.notice is None
    assert await store.get_user_prefs(10, None) == UserPrefs(instructions="calm")


def test_show_says_when_a_server_default_is_not_what_the_engine_can_do() -> None:
    sections = dict(render_sections(REALTIME, GuildSettings(default_voice="nova", default_speed=2.0)))
    assert "**Default voice:** nova (not offered now: bot default, alloy, used)" in sections["Speaking defaults"]
    assert "**Default speed:** 2× (more than this voice engine can do: 1× used)" in sections["Speaking defaults"]
    fine = dict(render_sections(REALTIME, GuildSettings(default_voice="marin", default_speed=1.5)))
    assert "**Default voice:** marin\n" in fine["Speaking defaults"] + "\n"
