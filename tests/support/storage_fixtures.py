"""Pytest fixtures for ``bot.storage``: every test using ``database`` or ``store`` runs on SQLite and PostgreSQL.

PostgreSQL comes from ``SPEECHBOT_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards, so runs can repeat and CI jobs can share a server. An
unreachable server skips the PostgreSQL tests locally and fails them when ``CI`` is set.

A test that asks for ``store`` starts from a database already migrated, as the store would leave it: on SQLite a
copy of a file migrated once per worker, on PostgreSQL a schema of the worker's, migrated once and emptied before
each test (every table but ``schema_version``, identities restarted). Creating and migrating a schema per test
cost about 90 ms of PostgreSQL's time each. A test that asks only for ``database`` gets an empty one (the
migration tests).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Executable, Table, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from bot.storage import Store
from bot.storage.engine import create_engine
from bot.storage.schema import metadata, schema_version

POSTGRES_URL_VARIABLE = "SPEECHBOT_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Database:
    """One empty database for one test: open stores on it, or read and write its tables directly."""

    backend: str
    url: str
    schema: str | None = None
    _engine: AsyncEngine | None = field(default=None, repr=False)

    async def open(self, **options: Any) -> Store:
        return await Store.open(self.url, schema=self.schema, **options)

    @property
    def engine(self) -> AsyncEngine:
        """A separate engine on the same tables, for looking behind the store's back."""
        if self._engine is None:
            self._engine = create_engine(self.url, schema=self.schema)
        return self._engine

    async def rows(self, table: Table) -> list[dict[str, Any]]:
        """Every row of ``table`` as a dict, in primary-key order."""
        async with self.engine.connect() as conn:
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            return [dict(row._mapping) for row in result]

    async def execute(self, statement: Executable) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def table_names(self) -> set[str]:
        async with self.engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


#: PostgreSQL URL -> why it cannot be used (None: it can); checked once per session.
_POSTGRES_PROBLEMS: dict[str, str | None] = {}


async def _postgres_url() -> str:
    """The PostgreSQL server for tests; skips (locally) or fails (``CI`` set) the test when it is unreachable."""
    url = os.environ.get(POSTGRES_URL_VARIABLE) or DEFAULT_POSTGRES_URL
    if url not in _POSTGRES_PROBLEMS:
        _POSTGRES_PROBLEMS[url] = await _unreachable(url)
    if problem := _POSTGRES_PROBLEMS[url]:
        message = f"PostgreSQL at {url} is unreachable ({problem}); set {POSTGRES_URL_VARIABLE} to a server."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


#: This worker's migrated SQLite file, and its migrated PostgreSQL schema per server URL (see the module's doc).
_MIGRATED_SQLITE: list[Path] = []
_MIGRATED_SCHEMAS: dict[str, str] = {}


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database (nothing migrated yet) on each backend; migrated already when the test uses ``store``."""
    migrated = "store" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "data" / "speechbot.db"
        if migrated:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(await migrated_sqlite(), path)
        db = Database("sqlite", f"sqlite:///{path}")
        yield db
        await db.dispose()
        return
    url = await _postgres_url()
    if migrated:
        db = Database("postgresql", url, await _migrated_schema(url))
        await db.execute(text(f"TRUNCATE {_tables_of(db.schema)} RESTART IDENTITY CASCADE"))
        yield db
        await db.dispose()
        return
    admin = create_engine(url)
    schema = f"speechbot_test_{uuid.uuid4().hex[:16]}"
    async with admin.begin() as conn:
        await conn.execute(CreateSchema(schema))
    db = Database("postgresql", url, schema)
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(DropSchema(schema, cascade=True))
        await admin.dispose()


@pytest.fixture
async def postgres_database_url() -> AsyncIterator[str]:
    """The URL of a fresh PostgreSQL database of its own, dropped afterwards: for bot processes, which take
    nothing but ``DATABASE_URL`` (so a schema of their own is not an option)."""
    url = await _postgres_url()
    name = f"speechbot_test_{uuid.uuid4().hex[:16]}"  # generated: safe to put in the statement
    admin = create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """A migrated store on each backend, with its cache on (invalidated by its own writes)."""
    opened = await database.open()
    try:
        yield opened
    finally:
        await opened.close()


async def migrated_sqlite() -> Path:
    """An empty SQLite database with every migration applied, made once per process: tests copy it instead of
    migrating again (``Store.open`` still checks the version)."""
    if not _MIGRATED_SQLITE:
        path = Path(tempfile.mkdtemp(prefix="speechbot-migrated-")) / "speechbot.db"
        await (await Store.open(f"sqlite:///{path}")).close()
        _MIGRATED_SQLITE.append(path)
    return _MIGRATED_SQLITE[0]


async def _migrated_schema(url: str) -> str:
    """This worker's migrated schema on ``url``, made on first use; dropped when the worker ends."""
    if url not in _MIGRATED_SCHEMAS:
        schema = f"speechbot_test_{uuid.uuid4().hex[:16]}"
        admin = create_engine(url)
        try:
            async with admin.begin() as conn:
                await conn.execute(CreateSchema(schema))
        finally:
            await admin.dispose()
        _MIGRATED_SCHEMAS[url] = schema
        await (await Store.open(url, schema=schema)).close()
    return _MIGRATED_SCHEMAS[url]


def _tables_of(schema: str | None) -> str:
    """Every table the store keeps, qualified by ``schema``, except ``schema_version`` (emptying it would unmigrate)."""
    return ", ".join(f'"{schema}"."{table.name}"' for table in metadata.sorted_tables if table is not schema_version)


async def drop_migrated_schemas() -> None:
    for url, schema in _MIGRATED_SCHEMAS.items():
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(DropSchema(schema, cascade=True))
        finally:
            await engine.dispose()
    _MIGRATED_SCHEMAS.clear()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _MIGRATED_SCHEMAS:
        asyncio.run(drop_migrated_schemas())


async def _unreachable(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(select(1))
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot use it"; the message says which
        return str(exc).splitlines()[0]
    finally:
        await engine.dispose()
    return None
