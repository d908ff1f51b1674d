"""The value rules of bot.storage.models: what each setting accepts, and the messages users see."""

from __future__ import annotations

import dataclasses

import pytest

from bot.audio.formats import AudioFormat
from bot.storage import DictionaryEntry, DictionaryError, GuildSettings, SettingsError, UserPrefs, parse_entries
from bot.storage.models import CodeMode, NameMode, SayName, SpeakOutput
from bot.storage.rules import GUILD_RULES


def test_every_setting_has_a_rule_and_the_defaults_pass_it() -> None:
    names = [f.name for f in dataclasses.fields(GuildSettings)]
    assert sorted(GUILD_RULES) == sorted(names)
    defaults = GuildSettings()
    assert defaults.replace(**{name: getattr(defaults, name) for name in names}) == defaults


def test_values_are_normalized() -> None:
    settings = GuildSettings().replace(
        read_channel_ids=[3, 1, 3],
        speak_output="voice",
        say_name="always",
        name_mode="nickname",
        code_mode="skip",
        default_format="flac",
        default_voice="  nova ",
        default_instructions="   ",
        default_speed=2,
    )
    assert settings.read_channel_ids == (1, 3)
    assert (settings.speak_output, settings.say_name, settings.name_mode, settings.code_mode) == (
        SpeakOutput.VOICE,
        SayName.ALWAYS,
        NameMode.NICKNAME,
        CodeMode.SKIP,
    )
    assert settings.default_format is AudioFormat.FLAC
    assert (settings.default_voice, settings.default_instructions) == ("nova", None)
    assert settings.default_speed == 2.0 and isinstance(settings.default_speed, float)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("read_channel_ids", "123", "The read channels must be a list of channel IDs."),
        ("read_channel_ids", [0], "The read channels must be a list of channel IDs."),
        ("read_channel_ids", list(range(1, 52)), "At most 50 channels can be read aloud."),
        ("autojoin", 1, "Auto-join must be on or off."),
        ("default_voice", "x" * 101, "The default voice can be at most 100 characters long."),
        ("default_voice", "no\nva", "The default voice must be a single line of plain text."),
        ("default_speed", 0.1, "The default speed must be between 0.25 and 4.0."),
        ("default_speed", float("nan"), "The default speed must be between 0.25 and 4.0."),
        ("default_speed", True, "The default speed must be between 0.25 and 4.0."),
        ("default_format", "mp3", "The default format must be one of: opus, wav, flac, aac, pcm."),
        ("default_instructions", "x" * 4097, "The default instructions can be at most 4096 characters long."),
        ("speak_output", "radio", "Speak output must be one of: file, voice, both, voice_message."),
        ("say_name", None, "Say name must be one of: always, never, on_change."),
        ("name_repeat_window", -1, "The name repeat window must be a whole number of seconds between 0 and 3600."),
        ("name_repeat_window", 1.5, "The name repeat window must be a whole number of seconds between 0 and 3600."),
        ("name_mode", "tag", "Name mode must be one of: display, nickname, username."),
        ("max_message_chars", 0, "The message length limit must be a whole number of characters between 1 and 4096."),
        ("max_repeat_chars", 51, "The repeated-character limit must be a whole number of characters between 1 and 50."),
        ("emoji_mode", "read", "Emoji mode must be one of: name, skip."),
        ("link_mode", "full", "Link mode must be one of: domain, skip."),
        ("code_mode", "run", "Code mode must be one of: read, skip."),
        ("skip_bots", "yes", "Skip bots must be on or off."),
        ("require_author_in_voice", None, "Require author in voice must be on or off."),
        ("optout_prefix", "no way", "The opt-out prefix must be at most 5 characters without spaces (empty = none)."),
        ("optout_prefix", "!!!!!!", "The opt-out prefix must be at most 5 characters without spaces (empty = none)."),
        ("required_role_id", -5, "The required role must be a role ID, or none."),
        ("deny_role_id", 2**63, "The denied role must be a role ID, or none."),
        ("moderator_role_id", "42", "The moderator role must be a role ID, or none."),
        ("idle_timeout", 5, "The idle timeout must be a whole number of seconds between 10 and 86400."),
        ("alone_timeout", 86_401, "The alone timeout must be a whole number of seconds between 0 and 86400."),
        ("announce_joins", 0, "Announce joins must be on or off."),
        ("backlog_speedup", 1.6, "The backlog speed-up must be between 1.0 and 1.5."),
        ("hold_mode", "eager", "The hold mode must be one of: early, strict."),
        ("hold_seconds", 5.5, "The moderation hold must be between 0.0 and 5.0."),
        ("hold_seconds", -0.1, "The moderation hold must be between 0.0 and 5.0."),
        ("daily_char_budget", 0, "The daily budget must be a whole number of characters between 1 and 1000000000."),
        (
            "monthly_char_budget",
            -1,
            "The monthly budget must be a whole number of characters between 1 and 1000000000.",
        ),
        (
            "user_chars_per_minute",
            0,
            "The per-user rate must be a whole number of characters between 1 and 1000000000.",
        ),
    ],
)
def test_a_bad_value_names_the_setting(setting: str, value: object, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        GuildSettings().replace(**{setting: value})
    assert (refused.value.setting, str(refused.value)) == (setting, message)


@pytest.mark.parametrize(
    "setting", ["default_voice", "default_format", "required_role_id", "idle_timeout", "daily_char_budget"]
)
def test_optional_settings_go_back_to_none(setting: str) -> None:
    assert getattr(GuildSettings().replace(**{setting: None}), setting) is None


def test_user_prefs_fall_back_field_by_field() -> None:
    guild = UserPrefs(speed=2.0)
    everywhere = UserPrefs(voice="nova", speed=1.0, spoken_name="Sam")
    assert guild.over(everywhere) == UserPrefs(voice="nova", speed=2.0, spoken_name="Sam")
    with pytest.raises(SettingsError, match=r"^Speed must be between 0.25 and 4.0.$"):
        UserPrefs().replace(speed=4.5)
    with pytest.raises(SettingsError, match="There is no setting called 'format'"):
        UserPrefs().replace(format="wav")


def test_dictionary_entries_are_checked_when_built() -> None:
    assert DictionaryEntry("a+b", "x", is_regex=True).is_regex
    with pytest.raises(DictionaryError, match="could be very slow"):
        DictionaryEntry(r"\d+x\d+", "x", is_regex=True)
    with pytest.raises(DictionaryError, match="replacement is too long"):
        DictionaryEntry("a", "x" * 101)
    with pytest.raises(DictionaryError, match="created_by must be a user ID"):
        DictionaryEntry("a", "b", created_by=0)
    with pytest.raises(DictionaryError, match="is_regex must be true or false"):
        DictionaryEntry("a", "b", is_regex="yes")  # type: ignore[arg-type]


def test_parse_entries_counts_from_one_and_limits_the_size() -> None:
    assert parse_entries([{"pattern": "a", "replacement": "b"}], created_by=7) == [DictionaryEntry("a", "b", False, 7)]
    with pytest.raises(DictionaryError, match=r"^Entry 3: The word or pattern is empty.$"):
        parse_entries([{"pattern": p, "replacement": ""} for p in ("a", "b", "")])
    with pytest.raises(DictionaryError, match="at most 500 entries, not 501"):
        parse_entries({"pattern": f"w{i}", "replacement": ""} for i in range(501))
