"""The database under the store: connections, one transaction per write, the per-guild read cache, and
database failures turned into :class:`~bot.storage.errors.StorageError`.

Kept apart from the queries (:class:`bot.storage.Store`, which extends :class:`Database`) so that how the bot
talks to SQLite and PostgreSQL (a write lock for SQLite's single writer, the dialect's upsert, what a failure
looks like) is in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Self, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.cache import Cache, CacheKey
from bot.storage.engine import create_engine, safe_url, write_transaction
from bot.storage.errors import StorageError
from bot.storage.migrations import migrate

#: Seconds a cached value may be served; only matters when several processes share one database.
DEFAULT_CACHE_TTL = 10.0

_T = TypeVar("_T")
_DB_FAILURES = (DBAPIError, PoolTimeoutError, OSError)


class Database:
    """An open database, migrated. Open with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, engine: AsyncEngine, *, cache_ttl: float = DEFAULT_CACHE_TTL) -> None:
        self._engine = engine
        self._cache = Cache(cache_ttl)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        # SQLite has one writer at a time anyway; queueing here saves our own connections from busy-waiting.
        self._write_lock: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    def forget_cached(self, *, guild_id: int) -> None:
        """Drop what the read cache holds for a server the bot left (nothing stored changes)."""
        self._cache.invalidate(guild_id=guild_id)

    @classmethod
    async def open(
        cls, database_url: str, *, schema: str | None = None, cache_ttl: float = DEFAULT_CACHE_TTL
    ) -> Self:
        """Connect and apply pending migrations.

        Raises :class:`SchemaTooNewError` for a database from a newer speechbot, :class:`StorageError` when
        the database cannot be reached or the URL is wrong. ``schema``: a PostgreSQL schema to use.
        """
        engine = create_engine(database_url, schema=schema)
        try:
            await migrate(engine)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, _DB_FAILURES):
                raise StorageError(f"Cannot open the database {safe_url(engine)}: {_reason(exc)}") from exc
            raise
        return cls(engine, cache_ttl=cache_ttl)

    async def close(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def ping(self) -> None:
        """Return when the database answers a query; raise :class:`StorageError` otherwise (readiness)."""
        async with self._read() as conn:
            await conn.execute(select(1))

    async def _cached(self, key: CacheKey, load: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        value = self._cache.get(key)
        if value is None:
            token = self._cache.token()
            async with self._read() as conn:
                value = await load(conn)
            self._cache.put(key, value, token)
        return value

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn:
                yield conn
        except _DB_FAILURES as exc:
            raise StorageError(f"The database is unavailable: {_reason(exc)}") from exc

    @asynccontextmanager
    async def _write(
        self, *, guild_id: int | None = None, user_id: int | None = None, invalidate: bool = True
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction; afterwards the cache forgets that guild and/or user (everything if neither)."""
        try:
            async with self._write_lock, write_transaction(self._engine) as conn:
                yield conn
        except _DB_FAILURES as exc:
            raise StorageError(f"The database is unavailable: {_reason(exc)}") from exc
        finally:
            if invalidate:
                self._cache.invalidate(guild_id=guild_id, user_id=user_id)



def _reason(exc: BaseException) -> str:
    """The driver's own complaint, without SQLAlchemy's statement dump."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
