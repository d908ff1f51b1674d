"""Turning ``DATABASE_URL`` into a configured async engine, and write transactions that behave on both backends.

SQLite: the driver's own transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself (the
documented recipe), so DDL is transactional and a write transaction can start with ``BEGIN IMMEDIATE``,
which takes the write lock up front (waiting up to the busy timeout) instead of failing halfway when
another process wrote in between.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.storage.errors import StorageError

#: Execution option marking a connection whose next transaction writes.
_WRITE = "speechbot_write"
#: Constant statements run on every new SQLite connection: WAL lets readers and the writer overlap, a writer
#: waits up to 10 s for another process's write lock, and synchronous=NORMAL is WAL's usual pairing (never
#: corrupts; a power cut may lose the last commits, which is fine for settings).
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
)


def create_engine(database_url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine for ``sqlite:///path`` (parent directory created) or ``postgresql://`` (via asyncpg).

    ``schema`` puts every table in that PostgreSQL schema (through ``search_path``), which must exist;
    tests use one schema each.
    """
    url = _parse(database_url)
    if url.drivername in ("sqlite", "sqlite+aiosqlite"):
        if schema is not None:
            raise StorageError("A schema can only be chosen on PostgreSQL.")
        return _sqlite_engine(url)
    if url.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        if importlib.util.find_spec("asyncpg") is None:
            raise StorageError(
                "DATABASE_URL is a PostgreSQL database, which needs the postgres extra: "
                "pip install 'speechbot[postgres]' (in the bot's virtual environment)."
            )
        connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}} if schema else {}
        return create_async_engine(
            url.set(drivername="postgresql+asyncpg"), pool_pre_ping=True, connect_args=connect_args
        )
    raise StorageError("DATABASE_URL must start with sqlite:/// or postgresql://.")


def safe_url(engine: AsyncEngine) -> str:
    """The engine's URL without its password, for messages and logs."""
    return engine.url.render_as_string(hide_password=True)


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that commits on success; on SQLite it holds the write lock from its first statement."""
    async with engine.connect() as conn:
        await conn.execution_options(**{_WRITE: True})
        async with conn.begin():
            yield conn


def _parse(database_url: str) -> URL:
    try:
        return make_url(database_url)
    except ArgumentError:
        raise StorageError("DATABASE_URL must start with sqlite:/// or postgresql://.") from None


def _sqlite_engine(url: URL) -> AsyncEngine:
    if not url.database or url.database == ":memory:":
        raise StorageError("DATABASE_URL needs a file for SQLite, e.g. sqlite:///data/speechbot.db.")
    folder = Path(url.database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the database's folder {folder}: {exc.strerror or type(exc).__name__}. Set DATA_DIR (or "
            "DATABASE_URL) to a folder the bot's user can write."
        ) from None
    engine = create_async_engine(url.set(drivername="sqlite+aiosqlite", database=str(Path(url.database).expanduser())))

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _begin)
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine
