"""``speechbot check`` only looks (issue 13 item 6): the database's schema version is read, never migrated; the
data and cache directories are judged without being created or written to."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.config import Settings, load_settings
from bot.diagnostics import check_cache_dir, check_data_dir, check_database, check_engines_switched_off
from bot.storage import Store
from bot.storage.migrations import MIGRATIONS


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"DATA_DIR": str(tmp_path / "data"), **env})


async def test_an_up_to_date_database_is_read_not_written(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    store = await Store.open(f"sqlite:///{db}")
    await store.close()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    finding = await check_database(settings_for(tmp_path, DATABASE_URL=f"sqlite:///{db}"))
    assert finding.ok and finding.what == "database: reachable and up to date"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


async def test_an_old_database_is_told_it_will_be_migrated_and_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    store = await Store.open(f"sqlite:///{db}")
    await store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM schema_version WHERE version > 1")
    finding = await check_database(settings_for(tmp_path, DATABASE_URL=f"sqlite:///{db}"))
    assert finding.ok and f"applies {len(MIGRATIONS) - 1} migration(s)" in finding.what
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)


async def test_missing_directories_are_judged_not_created(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert check_data_dir(settings).ok and check_cache_dir(settings).ok
    finding = await check_database(settings)
    assert finding.ok and "does not exist yet" in finding.what
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    finding = check_data_dir(settings_for(tmp_path))
    assert not finding.ok and "Not a directory" in finding.detail


async def test_engines_switched_off_by_the_owner_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    settings = settings_for(tmp_path, DATABASE_URL=f"sqlite:///{db}")
    store = await Store.open(f"sqlite:///{db}")
    await store.close()
    assert await check_engines_switched_off(settings) is None
    store = await Store.open(f"sqlite:///{db}")
    await store.set_engine_disabled("realtime", True)
    await store.close()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    finding = await check_engines_switched_off(settings)
    assert finding is not None and finding.warning and finding.what == "engines switched off by the owner: realtime"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
