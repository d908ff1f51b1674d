"""Schema migrations and opening databases, on SQLite and PostgreSQL (see tests/support/storage_fixtures.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert, inspect
from sqlalchemy.engine import make_url

from bot.setting_choices import HoldMode, SayName, SpeechLanguage
from bot.storage import SchemaTooNewError, StorageError, Store, Usage
from bot.storage.engine import create_engine
from bot.storage.migrations import MIGRATIONS, Migration, migrate
from bot.storage.schema import guild_settings, metadata, schema_version
from bot.storage.store import _DEFAULT_ROW
from tests.support.storage_fixtures import Database

#: guild_settings columns added by migrations 4, 6 and 7 (5 added tables only).
_ADDED_AFTER_4 = {"language", "distinct_voices"}
_ADDED_AFTER_3 = {"hold_mode", "hold_seconds", *_ADDED_AFTER_4}
NEXT = len(MIGRATIONS) + 1
CURRENT = list(range(1, NEXT))


def _create_notes(conn: Connection) -> None:
    Table("notes", MetaData(), Column("id", Integer, primary_key=True)).create(conn)


def _create_notes_then_fail(conn: Connection) -> None:
    _create_notes(conn)
    raise RuntimeError("the next migration is broken")


async def test_open_creates_every_table_from_empty(database: Database) -> None:
    store = await database.open()
    await store.close()

    assert await database.table_names() == set(metadata.tables)
    versions = [(row["version"], row["description"]) for row in await database.rows(schema_version)]
    assert versions == [(1, "initial schema"), (2, "voice sessions to rejoin after a restart"),
                        (3, "usage said by the fallback engine"),
                        (4, "read-aloud hold mode and length per server"),
                        (5, "the owner's blocklists and engine kill switch"),
                        (6, "the language a server's read-aloud speaks around messages"),
                        (7, "a distinct voice for each member without one")]


async def test_migrations_build_the_declared_schema(database: Database) -> None:
    """schema.py (what queries use) and the migrations (what databases get) describe the same tables."""
    await migrate(database.engine)

    def describe(conn: Connection) -> dict[str, object]:
        inspector = inspect(conn)
        return {
            name: (
                {c["name"]: (c["type"].python_type, c["nullable"]) for c in inspector.get_columns(name)},
                inspector.get_pk_constraint(name)["constrained_columns"],
                sorted(index["name"] for index in inspector.get_indexes(name) if index["name"].startswith("ix_")),
            )
            for name in inspector.get_table_names()
        }

    declared = {
        table.name: (
            {c.name: (c.type.python_type, c.nullable) for c in table.columns},
            [c.name for c in table.primary_key.columns],
            sorted(index.name for index in table.indexes),
        )
        for table in metadata.tables.values()
    }
    async with database.engine.connect() as conn:
        assert await conn.run_sync(describe) == declared


async def test_reopening_applies_nothing(database: Database) -> None:
    await (await database.open()).close()
    before = await database.rows(schema_version)

    assert await migrate(database.engine) == []
    await (await database.open()).close()

    assert await database.rows(schema_version) == before


async def test_a_new_migration_is_applied_once(database: Database) -> None:
    await migrate(database.engine)
    newer = (*MIGRATIONS, Migration(NEXT, "notes", _create_notes))

    assert await migrate(database.engine, newer) == [NEXT]
    assert await migrate(database.engine, newer) == []
    assert "notes" in await database.table_names()
    assert [row["version"] for row in await database.rows(schema_version)] == [*CURRENT, NEXT]


async def test_a_failing_migration_leaves_the_database_as_it_was(database: Database) -> None:
    await migrate(database.engine)
    broken = (*MIGRATIONS, Migration(NEXT, "broken", _create_notes_then_fail))

    with pytest.raises(RuntimeError, match="the next migration is broken"):
        await migrate(database.engine, broken)

    assert "notes" not in await database.table_names()
    assert [row["version"] for row in await database.rows(schema_version)] == CURRENT


async def test_a_failing_migration_on_an_empty_database_creates_nothing(database: Database) -> None:
    broken = (*MIGRATIONS, Migration(NEXT, "broken", _create_notes_then_fail))

    with pytest.raises(RuntimeError):
        await migrate(database.engine, broken)

    assert await database.table_names() == set()


async def test_a_database_newer_than_the_code_is_refused(database: Database) -> None:
    await migrate(database.engine)
    await database.execute(
        insert(schema_version).values(version=NEXT, description="from the future", applied_at=datetime.now(UTC))
    )

    with pytest.raises(SchemaTooNewError) as refused:
        await database.open()

    assert (refused.value.database_version, refused.value.code_version) == (NEXT, len(MIGRATIONS))
    assert f"schema version {NEXT}" in str(refused.value) and "Upgrade speechbot" in str(refused.value)
    assert [row["version"] for row in await database.rows(schema_version)] == [*CURRENT, NEXT]


async def test_a_version_1_database_is_upgraded_and_keeps_its_data(database: Database) -> None:
    """A database from the release before voice sessions were remembered: settings stay, the table is added."""
    assert await migrate(database.engine, MIGRATIONS[:1]) == [1]
    version_1 = {name: value for name, value in _DEFAULT_ROW.items() if name not in _ADDED_AFTER_3}
    await database.execute(insert(guild_settings).values({**version_1, "guild_id": 42, "default_voice": "nova"}))

    store = await database.open()
    try:
        assert (await store.get_guild_settings(42)).default_voice == "nova"
        await store.remember_voice_session(42, 43)
        assert [(r.guild_id, r.channel_id) for r in await store.voice_sessions()] == [(42, 43)]
    finally:
        await store.close()
    assert [row["version"] for row in await database.rows(schema_version)] == CURRENT


async def test_a_version_2_database_keeps_its_usage_and_counts_fallback_usage_apart(database: Database) -> None:
    """Usage recorded before the fallback engine existed stays what it was (all of it went to the service)."""
    assert await migrate(database.engine, MIGRATIONS[:2]) == [1, 2]
    await database.execute(insert(Table("usage", MetaData(), Column("guild_id"), Column("user_id"), Column("day"),
                                        Column("characters"), Column("requests"))).values(
        guild_id=42, user_id=7, day=date(2026, 12, 1), characters=300, requests=3))

    store = await database.open()
    try:
        assert await store.usage_since(42, date(2026, 12, 1)) == Usage(300, 3, 0, 0)
        await store.add_usage(42, 7, 50, date(2026, 12, 1), fallback=True)
        await store.add_usage(42, 7, 20, date(2026, 12, 1))
        assert await store.usage_since(42, date(2026, 12, 1)) == Usage(320, 4, 50, 1)
    finally:
        await store.close()
    assert [row["version"] for row in await database.rows(schema_version)] == CURRENT


async def test_a_version_3_server_gets_the_default_hold_and_can_change_it(database: Database) -> None:
    """Servers configured before the hold settings existed synthesize during the bot's own hold."""
    assert await migrate(database.engine, MIGRATIONS[:3]) == [1, 2, 3]
    version_3 = {name: value for name, value in _DEFAULT_ROW.items() if name not in _ADDED_AFTER_3}
    await database.execute(insert(guild_settings).values({**version_3, "guild_id": 42, "say_name": "never"}))

    store = await database.open()
    try:
        settings = await store.get_guild_settings(42)
        assert (settings.say_name, settings.hold_mode, settings.hold_seconds) == (SayName.NEVER, HoldMode.EARLY, None)
        changed = await store.update_guild_settings(42, hold_mode=HoldMode.STRICT, hold_seconds=2.5)
        assert (changed.hold_mode, changed.hold_seconds) == (HoldMode.STRICT, 2.5)
    finally:
        await store.close()
    assert [row["version"] for row in await database.rows(schema_version)] == CURRENT


async def test_a_version_4_server_speaks_english_and_can_change_it(database: Database) -> None:
    """Servers configured before ``/settings language`` existed keep hearing English scaffolding."""
    assert await migrate(database.engine, MIGRATIONS[:4]) == [1, 2, 3, 4]
    version_4 = {name: value for name, value in _DEFAULT_ROW.items() if name not in _ADDED_AFTER_4}
    await database.execute(insert(guild_settings).values({**version_4, "guild_id": 42, "hold_mode": "strict"}))

    store = await database.open()
    try:
        settings = await store.get_guild_settings(42)
        assert (settings.hold_mode, settings.language) == (HoldMode.STRICT, SpeechLanguage.EN)
        changed = await store.update_guild_settings(42, language=SpeechLanguage.JA)
        assert changed.language is SpeechLanguage.JA
        assert (await store.get_guild_settings(42)).language is SpeechLanguage.JA
    finally:
        await store.close()
    assert [row["version"] for row in await database.rows(schema_version)] == CURRENT


async def test_postgres_scheme_alias_is_accepted(database: Database) -> None:
    if database.backend != "postgresql":
        pytest.skip("PostgreSQL URLs only")
    url = make_url(database.url).set(drivername="postgres").render_as_string(hide_password=False)

    store = await Store.open(url, schema=database.schema)
    await store.ping()
    await store.close()


async def test_migrations_must_be_numbered_from_one_in_order(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'speechbot.db'}")
    with pytest.raises(ValueError, match="numbered"):
        await migrate(engine, (Migration(2, "gap", _create_notes),))
    await engine.dispose()


async def test_sqlite_file_gets_its_directory_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "speechbot.db"
    store = await Store.open(f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    async with engine.connect() as conn:
        foreign_keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
        busy_timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
    await engine.dispose()
    await store.close()

    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (foreign_keys, busy_timeout) == (1, 10_000)


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "sqlite:///:memory:", "sqlite://", "not a url"])
async def test_unsupported_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(StorageError, match="DATABASE_URL"):
        await Store.open(url)


async def test_an_unreachable_server_is_a_storage_error_without_the_password() -> None:
    with pytest.raises(StorageError, match="Cannot open the database") as refused:
        await Store.open("postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(refused.value)


async def test_ping_reports_a_lost_database_as_a_storage_error() -> None:
    store = Store(create_engine("postgresql://postgres@127.0.0.1:1/test"))
    with pytest.raises(StorageError, match="unavailable"):
        await store.ping()
    await store.close()
