"""The storage repository on SQLite and PostgreSQL: every method, concurrency, caching, restarts, forgetting.

Assertions read rows straight from the tables (``database.rows``) or from a second, cache-less store.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import BigInteger, func, select

from bot.audio.formats import AudioFormat
from bot.storage import (
    BudgetUse,
    DictionaryEntry,
    DictionaryError,
    EffectivePrefs,
    GuildSettings,
    OwnerState,
    SettingsError,
    Store,
    Usage,
    UserPrefs,
    parse_entries,
)
from bot.storage.models import MAX_DICTIONARY_ENTRIES, SpeakOutput
from bot.storage.schema import (
    FORGOTTEN_USER,
    dictionary_entries,
    guild_read_channels,
    guild_settings,
    metadata,
    muted_users,
    usage,
    user_prefs,
    voice_sessions,
)
from tests.support.storage_fixtures import Database

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
USER = 333_333_333_333_333_333
OTHER_USER = 444_444_444_444_444_444
DAY = date(2025, 3, 14)


async def _fresh(database: Database) -> Store:
    """A second store without a cache: what a restarted process would read."""
    return await database.open(cache_ttl=0)


# --- guild settings ---


async def test_an_unknown_guild_has_the_defaults_and_reading_writes_nothing(store: Store, database: Database) -> None:
    assert await store.get_guild_settings(GUILD) == GuildSettings()
    assert await database.rows(guild_settings) == []


async def test_update_persists_typed_columns_and_channels(store: Store, database: Database) -> None:
    updated = await store.update_guild_settings(
        GUILD, default_speed=1.25, speak_output="both", default_format="wav", read_channel_ids=[30, 10, 30]
    )

    assert updated == GuildSettings(
        default_speed=1.25, speak_output=SpeakOutput.BOTH, default_format=AudioFormat.WAV, read_channel_ids=(10, 30)
    )
    [row] = await database.rows(guild_settings)
    assert (row["guild_id"], row["default_speed"], row["speak_output"], row["default_format"]) == (
        GUILD,
        1.25,
        "both",
        "wav",
    )
    assert [(r["guild_id"], r["channel_id"]) for r in await database.rows(guild_read_channels)] == [
        (GUILD, 10),
        (GUILD, 30),
    ]
    other = await _fresh(database)
    assert await other.get_guild_settings(GUILD) == updated
    assert await other.get_guild_settings(OTHER_GUILD) == GuildSettings()
    await other.close()


async def test_every_setting_round_trips_at_its_limits(store: Store, database: Database) -> None:
    biggest_id = 2**63 - 1
    everything = GuildSettings().replace(
        read_channel_ids=[biggest_id, 1],
        autojoin=True,
        default_voice="shimmer",
        default_speed=0.25,
        default_format="pcm",
        default_instructions="Line one.\nLine two, ünïcödé ✓." + "x" * 4000,
        speak_output="voice",
        say_name="never",
        name_repeat_window=3600,
        name_mode="username",
        max_message_chars=4096,
        max_repeat_chars=50,
        emoji_mode="skip",
        link_mode="skip",
        code_mode="skip",
        skip_bots=False,
        require_author_in_voice=False,
        optout_prefix="",
        required_role_id=biggest_id,
        deny_role_id=biggest_id - 1,
        moderator_role_id=1,
        idle_timeout=86_400,
        alone_timeout=0,
        announce_joins=True,
        backlog_speedup=1.5,
        hold_mode="strict",
        hold_seconds=5,
        language="pt-BR",
        daily_char_budget=10**9,
        monthly_char_budget=1,
        user_chars_per_minute=123_456,
        distinct_voices=True,
    )
    changes = {name: getattr(everything, name) for name in (f.name for f in dataclasses.fields(GuildSettings))}
    assert all(value != getattr(GuildSettings(), name) for name, value in changes.items())

    assert await store.update_guild_settings(GUILD, **changes) == everything

    fresh = await _fresh(database)
    assert await fresh.get_guild_settings(GUILD) == everything
    await fresh.close()


async def test_update_keeps_other_settings(store: Store) -> None:
    await store.update_guild_settings(GUILD, autojoin=True, read_channel_ids=[5])
    updated = await store.update_guild_settings(GUILD, max_message_chars=120)
    assert (updated.autojoin, updated.read_channel_ids, updated.max_message_chars) == (True, (5,), 120)


@pytest.mark.parametrize(
    ("changes", "setting", "message"),
    [
        ({"default_speed": 9}, "default_speed", "The default speed must be between 0.25 and 4.0."),
        ({"autojoin": True, "say_name": "sometimes"}, "say_name", "Say name must be one of: always, never, on_change."),
        ({"colour": "red"}, "colour", "There is no setting called 'colour'."),
    ],
)
async def test_a_bad_update_names_the_setting_and_writes_nothing(
    store: Store, database: Database, changes: dict[str, object], setting: str, message: str
) -> None:
    await store.update_guild_settings(GUILD, max_repeat_chars=4)
    before = await database.rows(guild_settings)

    with pytest.raises(SettingsError) as refused:
        await store.update_guild_settings(GUILD, **changes)

    assert (refused.value.setting, refused.value.message) == (setting, message)
    assert await database.rows(guild_settings) == before
    assert (await store.get_guild_settings(GUILD)).max_repeat_chars == 4


async def test_reset_removes_the_row_and_its_channels(store: Store, database: Database) -> None:
    await store.update_guild_settings(GUILD, read_channel_ids=[1, 2], autojoin=True)
    await store.update_guild_settings(OTHER_GUILD, read_channel_ids=[3])

    assert await store.reset_guild_settings(GUILD) == GuildSettings()

    assert await store.get_guild_settings(GUILD) == GuildSettings()
    assert [row["guild_id"] for row in await database.rows(guild_settings)] == [OTHER_GUILD]
    assert [row["channel_id"] for row in await database.rows(guild_read_channels)] == [3]


async def test_concurrent_updates_of_different_settings_all_persist(store: Store, database: Database) -> None:
    """Many writers at once, through two stores (two processes): no update overwrites another."""
    other = await database.open()
    changes = [
        {"name_repeat_window": 45},
        {"max_message_chars": 500},
        {"max_repeat_chars": 7},
        {"autojoin": True},
        {"announce_joins": True},
        {"skip_bots": False},
        {"default_voice": "nova"},
        {"default_speed": 1.5},
        {"read_channel_ids": [77, 88]},
        {"optout_prefix": "!"},
        {"idle_timeout": 600},
        {"alone_timeout": 5},
        {"daily_char_budget": 10_000},
        {"monthly_char_budget": 200_000},
        {"user_chars_per_minute": 400},
        {"backlog_speedup": 1.25},
        {"hold_mode": "strict"},
        {"hold_seconds": 0.5},
        {"moderator_role_id": 99},
        {"emoji_mode": "skip"},
        {"link_mode": "skip"},
        {"code_mode": "skip"},
    ]
    await asyncio.gather(
        *((store if i % 2 else other).update_guild_settings(GUILD, **change) for i, change in enumerate(changes))
    )
    await other.close()

    expected = GuildSettings()
    for change in changes:
        expected = expected.replace(**change)
    fresh = await _fresh(database)
    assert await fresh.get_guild_settings(GUILD) == expected
    await fresh.close()
    [row] = await database.rows(guild_settings)
    assert row["revision"] == len(changes)


# --- caching ---


async def test_a_write_is_read_back_at_once_by_the_same_store(store: Store) -> None:
    assert (await store.get_guild_settings(GUILD)).autojoin is False  # now cached
    await store.update_guild_settings(GUILD, autojoin=True)
    assert (await store.get_guild_settings(GUILD)).autojoin is True

    assert not await store.is_muted(GUILD, USER)
    await store.mute(GUILD, USER)
    assert await store.is_muted(GUILD, USER)

    assert await store.list_entries(GUILD) == ()
    await store.add_entry(GUILD, "brb", "be right back")
    assert [e.pattern for e in await store.list_entries(GUILD)] == ["brb"]

    assert await store.get_user_prefs(USER, GUILD) == UserPrefs()
    await store.set_user_prefs(USER, None, voice="echo")  # global: shows through in every guild
    assert (await store.get_user_prefs(USER, GUILD)).voice == "echo"


async def test_another_store_sees_writes_once_its_cache_expires(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]  # the cache's clock, moved by the test instead of waiting out the time-to-live
    monkeypatch.setattr("bot.storage.cache.time", SimpleNamespace(monotonic=lambda: now[0]))
    writer = await database.open()
    reader = await database.open(cache_ttl=0.3)
    assert (await reader.get_guild_settings(GUILD)).autojoin is False

    await writer.update_guild_settings(GUILD, autojoin=True)
    now[0] = 1000.0 + 0.29
    assert (await reader.get_guild_settings(GUILD)).autojoin is False  # served from its cache
    now[0] = 1000.0 + 0.3  # exactly when the entry read at 1000.0 expires
    assert (await reader.get_guild_settings(GUILD)).autojoin is True

    await writer.close()
    await reader.close()


async def test_a_read_racing_a_write_does_not_cache_the_old_value(store: Store) -> None:
    reads = (store.get_guild_settings(GUILD) for _ in range(5))
    await asyncio.gather(*reads, store.update_guild_settings(GUILD, autojoin=True))
    assert (await store.get_guild_settings(GUILD)).autojoin is True


# --- user preferences ---


async def test_user_prefs_guild_over_global_over_guild_defaults(store: Store, database: Database) -> None:
    await store.set_user_prefs(USER, None, voice="nova", speed=1.5, spoken_name="Sam")
    await store.set_user_prefs(USER, GUILD, speed=2.0)

    here = await store.get_user_prefs(USER, GUILD)
    assert here == UserPrefs(voice="nova", speed=2.0, spoken_name="Sam")
    assert await store.get_user_prefs(USER, OTHER_GUILD) == UserPrefs(voice="nova", speed=1.5, spoken_name="Sam")
    assert await store.get_user_prefs(USER, None) == UserPrefs(voice="nova", speed=1.5, spoken_name="Sam")
    assert await store.get_user_prefs(OTHER_USER, GUILD) == UserPrefs()

    guild = await store.update_guild_settings(GUILD, default_instructions="Speak softly.", default_voice="onyx")
    expected = EffectivePrefs(voice="nova", speed=2.0, instructions="Speak softly.", spoken_name="Sam")
    assert here.effective(guild) == expected
    defaults = EffectivePrefs(voice="onyx", speed=1.0, instructions="Speak softly.", spoken_name=None)
    assert UserPrefs().effective(guild) == defaults

    rows = {(r["user_id"], r["guild_id"]): r for r in await database.rows(user_prefs)}
    assert set(rows) == {(USER, 0), (USER, GUILD)}
    assert (rows[(USER, GUILD)]["speed"], rows[(USER, GUILD)]["voice"]) == (2.0, None)


async def test_setting_none_clears_a_choice_and_an_empty_row_is_removed(store: Store, database: Database) -> None:
    await store.set_user_prefs(USER, GUILD, voice="nova", speed=1.5)
    assert await store.set_user_prefs(USER, GUILD, voice=None) == UserPrefs(speed=1.5)
    assert await store.set_user_prefs(USER, GUILD, speed=None) == UserPrefs()
    assert await database.rows(user_prefs) == []


async def test_reset_user_prefs_clears_one_scope(store: Store, database: Database) -> None:
    await store.set_user_prefs(USER, None, voice="nova")
    await store.set_user_prefs(USER, GUILD, voice="echo")

    assert await store.reset_user_prefs(USER, GUILD) is True
    assert await store.reset_user_prefs(USER, GUILD) is False
    assert await store.get_user_prefs(USER, GUILD) == UserPrefs(voice="nova")
    assert await store.reset_user_prefs(USER, None) is True
    assert await database.rows(user_prefs) == []


async def test_bad_user_prefs_are_refused_and_write_nothing(store: Store, database: Database) -> None:
    with pytest.raises(SettingsError, match=r"^Speed must be between 0.25 and 4.0.$"):
        await store.set_user_prefs(USER, GUILD, voice="nova", speed=5)
    with pytest.raises(SettingsError, match="spoken name can be at most 50 characters"):
        await store.set_user_prefs(USER, GUILD, spoken_name="x" * 51)
    assert await database.rows(user_prefs) == []


async def test_concurrent_user_pref_changes_all_persist(store: Store, database: Database) -> None:
    await asyncio.gather(
        store.set_user_prefs(USER, GUILD, voice="nova"),
        store.set_user_prefs(USER, GUILD, speed=0.5),
        store.set_user_prefs(USER, GUILD, instructions="Whisper."),
        store.set_user_prefs(USER, GUILD, spoken_name="Sam"),
    )
    fresh = await _fresh(database)
    assert await fresh.get_user_prefs(USER, GUILD) == UserPrefs("nova", 0.5, "Whisper.", "Sam")
    await fresh.close()


# --- dictionary ---


async def test_dictionary_add_replace_same_pattern_list_and_remove(store: Store, database: Database) -> None:
    await store.add_entry(GUILD, "brb", "be right back", created_by=USER)
    await store.add_entry(GUILD, r"\bgg\b", "good game", is_regex=True)
    await store.add_entry(GUILD, "brb", "bee arr bee")  # same pattern: replaced in place
    await store.add_entry(OTHER_GUILD, "afk", "away")

    assert await store.list_entries(GUILD) == (
        DictionaryEntry("brb", "bee arr bee"),
        DictionaryEntry(r"\bgg\b", "good game", is_regex=True),
    )
    assert await store.remove_entry(GUILD, "brb") is True
    assert await store.remove_entry(GUILD, "brb") is False
    assert [e.pattern for e in await store.list_entries(GUILD)] == [r"\bgg\b"]
    assert sorted(row["pattern"] for row in await database.rows(dictionary_entries)) == [r"\bgg\b", "afk"]


@pytest.mark.parametrize(
    ("pattern", "is_regex", "message"),
    [
        ("  ", False, "The word or pattern is empty."),
        ("(unclosed", True, "not a valid regular expression"),
        ("a*", True, "can match an empty piece of text"),
        ("(a+)+", True, "it can be extremely slow"),
        ("x" * 101, False, "The word or pattern is too long"),
    ],
)
async def test_a_bad_entry_is_refused(
    store: Store, database: Database, pattern: str, is_regex: bool, message: str
) -> None:
    with pytest.raises(DictionaryError, match=message.replace("(", r"\(")):
        await store.add_entry(GUILD, pattern, "anything", is_regex=is_regex)
    assert await database.rows(dictionary_entries) == []


async def test_an_import_replaces_the_whole_dictionary(store: Store) -> None:
    await store.add_entry(GUILD, "old", "gone")
    imported = parse_entries(
        [{"pattern": "lol", "replacement": "laughing"}, {"pattern": "^hi", "replacement": "hello", "is_regex": True}],
        created_by=USER,
    )

    assert await store.replace_entries(GUILD, imported) == 2

    assert await store.list_entries(GUILD) == (
        DictionaryEntry("lol", "laughing", False, USER),
        DictionaryEntry("^hi", "hello", True, USER),
    )


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [{"pattern": "a", "replacement": "b"}, {"pattern": "c"}],
            "Entry 2: Each entry needs a pattern and a replacement.",
        ),
        ([{"pattern": "a", "replacement": "b"}, "c=d"], "Entry 2: Each entry must be an object"),
        (
            [{"pattern": "a", "replacement": "b"}, {"pattern": "[", "replacement": "", "is_regex": True}],
            "Entry 2: That is not",
        ),
        ([{"pattern": "a", "replacement": 3}], "Entry 1: The pattern and the replacement must be text."),
        ([{"pattern": "a", "replacement": "b", "colour": "red"}], "Entry 1: Unknown field 'colour'."),
        ([{"pattern": "a", "replacement": "b"}, {"pattern": "a", "replacement": "c"}], "appears more than once"),
    ],
)
async def test_a_malformed_import_is_rejected_whole(
    store: Store, database: Database, records: list[object], message: str
) -> None:
    await store.add_entry(GUILD, "kept", "still here")
    before = await database.rows(dictionary_entries)

    with pytest.raises(DictionaryError, match=message.replace("(", r"\(").replace("[", r"\[")):
        await store.replace_entries(GUILD, parse_entries(records))

    assert await database.rows(dictionary_entries) == before


async def test_a_dictionary_cannot_grow_past_its_limit(store: Store, database: Database) -> None:
    full = [DictionaryEntry(f"word{i}", "x") for i in range(MAX_DICTIONARY_ENTRIES)]
    assert await store.replace_entries(GUILD, full) == MAX_DICTIONARY_ENTRIES

    with pytest.raises(DictionaryError, match="full"):
        await store.add_entry(GUILD, "one more", "x")
    with pytest.raises(DictionaryError, match="at most"):
        await store.replace_entries(GUILD, [*full, DictionaryEntry("one more", "x")])

    assert len(await database.rows(dictionary_entries)) == MAX_DICTIONARY_ENTRIES
    assert await store.add_entry(GUILD, "word0", "replaced in place") == DictionaryEntry("word0", "replaced in place")


# --- mutes ---


async def test_mute_unmute_and_list(store: Store, database: Database) -> None:
    assert await store.mute(GUILD, USER, by=OTHER_USER) is True
    assert await store.mute(GUILD, USER) is False
    await store.mute(GUILD, OTHER_USER)

    assert await store.is_muted(GUILD, USER) and not await store.is_muted(OTHER_GUILD, USER)
    muted = await store.list_muted(GUILD)
    assert [(m.user_id, m.muted_by) for m in muted] == [(USER, OTHER_USER), (OTHER_USER, None)]
    assert all(m.muted_at.tzinfo is not None for m in muted)

    assert await store.unmute(GUILD, USER) is True
    assert await store.unmute(GUILD, USER) is False
    assert not await store.is_muted(GUILD, USER)
    assert [(r["guild_id"], r["user_id"]) for r in await database.rows(muted_users)] == [(GUILD, OTHER_USER)]


# --- usage ---


async def test_usage_adds_up_per_day_and_sums_from_a_day(store: Store, database: Database) -> None:
    await store.add_usage(GUILD, USER, 100, DAY - timedelta(days=1))
    await store.add_usage(GUILD, USER, 40, DAY)
    await store.add_usage(GUILD, USER, 2, DAY, requests=2)
    await store.add_usage(GUILD, OTHER_USER, 500, DAY)
    await store.add_usage(OTHER_GUILD, USER, 9_999, DAY)

    assert await store.usage_since(GUILD, DAY) == Usage(characters=542, requests=4)
    assert await store.usage_since(GUILD, DAY - timedelta(days=1)) == Usage(characters=642, requests=5)
    assert await store.usage_since(GUILD, DAY, user_id=USER) == Usage(characters=42, requests=3)
    assert await store.usage_since(GUILD, DAY + timedelta(days=1)) == Usage()
    assert await store.usage_by_user(GUILD, DAY - timedelta(days=1)) == [
        (OTHER_USER, Usage(500, 1)),
        (USER, Usage(142, 4)),
    ]
    assert await store.usage_by_user(GUILD, DAY, limit=1) == [(OTHER_USER, Usage(500, 1))]
    assert len(await database.rows(usage)) == 4


async def test_fallback_usage_is_kept_apart_from_what_budgets_count(store: Store) -> None:
    await store.add_usage(GUILD, USER, 100, DAY)
    await store.add_usage(GUILD, USER, 30, DAY, fallback=True)
    await store.add_usage(GUILD, OTHER_USER, 7, DAY, fallback=True)
    assert await store.usage_since(GUILD, DAY) == Usage(100, 1, 37, 2)
    assert await store.usage_since(GUILD, DAY, user_id=OTHER_USER) == Usage(0, 0, 7, 1)
    assert await store.usage_by_user(GUILD, DAY) == [(USER, Usage(100, 1, 30, 1)), (OTHER_USER, Usage(0, 0, 7, 1))]
    await store.forget_user(USER)
    assert await store.usage_since(GUILD, DAY, user_id=FORGOTTEN_USER) == Usage(100, 1, 30, 1)


async def test_concurrent_usage_is_counted_exactly(store: Store) -> None:
    await asyncio.gather(*(store.add_usage(GUILD, USER, 10, DAY) for _ in range(40)))
    assert await store.usage_since(GUILD, DAY) == Usage(characters=400, requests=40)


async def test_negative_usage_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.add_usage(GUILD, USER, -1, DAY)


# --- voice sessions to rejoin ---


async def test_a_voice_session_is_remembered_moved_and_forgotten(store: Store, database: Database) -> None:
    assert await store.voice_sessions() == []
    await store.remember_voice_session(GUILD, 5)
    await store.remember_voice_session(OTHER_GUILD, 7)
    await store.remember_voice_session(GUILD, 6)  # moved: one row per server, naming the new channel

    remembered = await store.voice_sessions()
    assert [(r.guild_id, r.channel_id) for r in remembered] == [(GUILD, 6), (OTHER_GUILD, 7)]
    assert all(r.joined_at.tzinfo is not None for r in remembered)
    fresh = await _fresh(database)  # what another process (or the next start) reads
    assert await fresh.voice_sessions() == remembered
    await fresh.close()

    assert not await store.forget_voice_session(GUILD, channel_id=5)  # only if it still names that channel
    assert await store.forget_voice_session(GUILD, channel_id=6)
    assert not await store.forget_voice_session(GUILD)
    assert await store.forget_voice_session(OTHER_GUILD)
    assert await database.rows(voice_sessions) == []


async def test_concurrent_joins_in_many_servers_are_all_remembered(store: Store) -> None:
    await asyncio.gather(*(store.remember_voice_session(guild, guild + 1) for guild in range(1, 21)))
    assert [(r.guild_id, r.channel_id) for r in await store.voice_sessions()] == [(g, g + 1) for g in range(1, 21)]


# --- restart ---


async def _populate(store: Store) -> None:
    await store.update_guild_settings(GUILD, read_channel_ids=[5, 6], default_voice="nova", daily_char_budget=1000)
    await store.set_user_prefs(USER, None, voice="echo", spoken_name="Sam")
    await store.set_user_prefs(USER, GUILD, speed=1.75, instructions="Cheerfully.")
    await store.add_entry(GUILD, "brb", "be right back", created_by=USER)
    await store.mute(GUILD, USER, by=OTHER_USER)
    await store.mute(OTHER_GUILD, OTHER_USER, by=USER)
    await store.add_usage(GUILD, USER, 120, DAY)
    await store.add_usage(GUILD, OTHER_USER, 30, DAY)
    await store.add_usage(OTHER_GUILD, USER, 50, DAY + timedelta(days=1))
    await store.remember_voice_session(GUILD, 5)


async def test_everything_survives_a_restart(database: Database) -> None:
    store = await database.open()
    await _populate(store)
    snapshot = (
        await store.get_guild_settings(GUILD),
        await store.get_user_prefs(USER, GUILD),
        await store.list_entries(GUILD),
        await store.list_muted(GUILD),
        await store.usage_by_user(GUILD, DAY),
        await store.voice_sessions(),
    )
    await store.close()

    reopened = await database.open()
    assert (
        await reopened.get_guild_settings(GUILD),
        await reopened.get_user_prefs(USER, GUILD),
        await reopened.list_entries(GUILD),
        await reopened.list_muted(GUILD),
        await reopened.usage_by_user(GUILD, DAY),
        await reopened.voice_sessions(),
    ) == snapshot
    assert await reopened.is_muted(GUILD, USER)
    await reopened.ping()
    await reopened.close()


# --- forgetting a user ---

_USER_COLUMNS = [
    (table, column) for table in metadata.tables.values() for column in table.columns if column.info.get("user")
]


def test_every_column_naming_a_user_is_marked() -> None:
    """forget_user and its test rely on the marks; an unmarked user column would be missed silently."""
    unmarked = [
        f"{table.name}.{column.name}"
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, BigInteger)
        and (column.name.endswith(("user_id", "_by")))
        and not column.info.get("user")
    ]
    # Kept on purpose: the owner's blocklist exists to stop abuse, and /forgetme must not lift a block.
    assert unmarked == ["blocked_users.user_id"]
    assert {f"{t.name}.{c.name}" for t, c in _USER_COLUMNS} == {
        "user_prefs.user_id",
        "dictionary_entries.created_by",
        "muted_users.user_id",
        "muted_users.muted_by",
        "usage.user_id",
    }


async def _rows_naming(database: Database, user_id: int) -> list[str]:
    found = []
    async with database.engine.connect() as conn:
        for table, column in _USER_COLUMNS:
            count = await conn.scalar(select(func.count()).select_from(table).where(column == user_id))
            found += [f"{table.name}.{column.name}"] * count
    return found


async def test_forget_user_leaves_no_row_naming_them(store: Store, database: Database) -> None:
    await _populate(store)
    totals_before = (await store.usage_since(GUILD, DAY), await store.usage_since(OTHER_GUILD, DAY))
    assert len(await _rows_naming(database, USER)) == 7

    await store.forget_user(USER)

    assert await _rows_naming(database, USER) == []
    assert (await store.usage_since(GUILD, DAY), await store.usage_since(OTHER_GUILD, DAY)) == totals_before
    assert await store.usage_by_user(GUILD, DAY) == [(FORGOTTEN_USER, Usage(120, 1)), (OTHER_USER, Usage(30, 1))]
    assert await store.get_user_prefs(USER, GUILD) == UserPrefs()
    assert not await store.is_muted(GUILD, USER)
    assert await store.list_entries(GUILD) == (DictionaryEntry("brb", "be right back", created_by=None),)
    assert [(m.user_id, m.muted_by) for m in await store.list_muted(OTHER_GUILD)] == [(OTHER_USER, None)]
    # Other users keep their rows (the mute OTHER_USER made of USER went with USER).
    assert sorted(await _rows_naming(database, OTHER_USER)) == ["muted_users.user_id", "usage.user_id"]


async def test_forgetting_two_users_merges_their_anonymous_usage(store: Store) -> None:
    await store.add_usage(GUILD, USER, 10, DAY)
    await store.add_usage(GUILD, OTHER_USER, 5, DAY)
    await asyncio.gather(store.forget_user(USER), store.forget_user(OTHER_USER))
    assert await store.usage_by_user(GUILD, DAY) == [(FORGOTTEN_USER, Usage(15, 2))]


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_the_owners_blocks_and_kill_switch_persist_and_survive_forget_user(store: Store) -> None:
    assert await store.set_user_blocked(USER, True)
    assert not await store.set_user_blocked(USER, True)  # already
    assert await store.set_guild_blocked(GUILD, True)
    assert await store.set_engine_disabled("realtime", True)
    await store.forget_user(USER)  # /forgetme does not lift a block
    assert await store.owner_state() == OwnerState(frozenset({USER}), frozenset({GUILD}), frozenset({"realtime"}))

    assert await store.set_user_blocked(USER, False)
    assert not await store.set_guild_blocked(OTHER_GUILD, False)  # was never blocked
    assert await store.set_engine_disabled("realtime", False)
    assert await store.owner_state() == OwnerState(blocked_guilds=frozenset({GUILD}))


async def test_budget_use_lists_servers_with_a_budget_fullest_first(store: Store) -> None:
    await store.update_guild_settings(GUILD, daily_char_budget=100)
    await store.update_guild_settings(OTHER_GUILD, monthly_char_budget=1000)
    await store.add_usage(GUILD, USER, 10, DAY)
    await store.add_usage(GUILD, USER, 30, DAY.replace(day=1))  # earlier this month: not today
    await store.add_usage(OTHER_GUILD, USER, 900, DAY)
    await store.add_usage(OTHER_GUILD, USER, 5, DAY.replace(month=2))  # last month: not counted

    uses = await store.budget_use(DAY, DAY.replace(day=1))
    assert uses == [BudgetUse(OTHER_GUILD, None, 1000, 900, 900), BudgetUse(GUILD, 100, None, 10, 40)]
    assert await store.usage_everywhere(DAY) == Usage(910, 2)
