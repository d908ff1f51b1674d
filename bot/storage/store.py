"""The repository: every read and write of stored settings, on SQLite or PostgreSQL, through SQLAlchemy Core.

Writers change only the columns they were asked to change, inside one transaction that starts by locking
the row it touches, so concurrent commands never overwrite each other's settings. What is read on every
message (guild settings, user preferences, mutes, dictionaries) is cached per guild; see
:mod:`bot.storage.cache` for how long another process's writes can stay unseen.

Data protection: ``forget_user`` removes a user's preferences and mutes and moves their usage counts to an
anonymous user (the server's totals, and so its budgets, stay right); dictionary entries belong to the
server and are kept, without their author.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Unpack

from sqlalchemy import RowMapping, Table, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.cache import CacheKey
from bot.storage.database import Database
from bot.storage.errors import DictionaryError
from bot.storage.models import (
    MAX_DICTIONARY_ENTRIES,
    BudgetUse,
    DictionaryEntry,
    GuildSettings,
    GuildSettingsChanges,
    Mute,
    OwnerState,
    Usage,
    UserPrefs,
    UserPrefsChanges,
    VoiceRecord,
    check_entry_set,
)
from bot.storage.schema import (
    FORGOTTEN_USER,
    GLOBAL_SCOPE,
    blocked_guilds,
    blocked_users,
    dictionary_entries,
    disabled_engines,
    guild_read_channels,
    guild_settings,
    muted_users,
    schema_version,
    usage,
    user_prefs,
    voice_sessions,
)

_SETTINGS_COLUMNS = tuple(f.name for f in dataclasses.fields(GuildSettings) if f.name != "read_channel_ids")
_PREFS_COLUMNS = tuple(f.name for f in dataclasses.fields(UserPrefs))
#: ``Usage``'s fields, summed, in its order.
_USAGE_SUMS = tuple(func.sum(usage.c[f.name]) for f in dataclasses.fields(Usage))


def _plain(value: object) -> object:
    """Enum members as their stored strings."""
    return value.value if isinstance(value, Enum) else value


#: A new guild_settings row: the defaults, later changed column by column.
_DEFAULT_ROW = {"revision": 1, **{name: _plain(getattr(GuildSettings(), name)) for name in _SETTINGS_COLUMNS}}


class Store(Database):
    """Stored settings for every server and user: every query, on :class:`Database`'s connections."""

    # --- guild settings ---

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        """The server's settings (the defaults if it never changed any)."""
        return await self._cached(CacheKey("settings", guild_id), lambda conn: self._load_settings(conn, guild_id))

    async def update_guild_settings(self, guild_id: int, **changes: Unpack[GuildSettingsChanges]) -> GuildSettings:
        """Apply ``changes`` atomically and return the new settings.

        Raises :class:`SettingsError`, writing nothing, for a value out of range.
        """
        return await self._update_guild_settings(guild_id, changes)

    async def reset_guild_settings(self, guild_id: int, *names: str) -> GuildSettings:
        """The settings called ``names`` back to their defaults, or, with no names, every setting (the dictionary,
        mutes and usage stay); :class:`SettingsError` for a name that is no setting."""
        if names:
            defaults = GuildSettings()
            return await self._update_guild_settings(guild_id, {name: getattr(defaults, name, None) for name in names})
        async with self._write(guild_id=guild_id) as conn:
            await conn.execute(delete(guild_settings).where(guild_settings.c.guild_id == guild_id))
        return GuildSettings()

    async def _update_guild_settings(self, guild_id: int, changes: Mapping[str, object]) -> GuildSettings:
        checked = GuildSettings().with_values(changes)
        columns = {name: _plain(getattr(checked, name)) for name in changes if name in _SETTINGS_COLUMNS}
        # One upsert: it inserts the defaults plus the changes, or updates just the changed columns, and
        # either way holds the row's lock until commit (so the channel rows below are written under it too).
        upsert = self._insert(guild_settings).values({**_DEFAULT_ROW, **columns, "guild_id": guild_id})
        upsert = upsert.on_conflict_do_update(
            index_elements=[guild_settings.c.guild_id],
            set_={"revision": guild_settings.c.revision + 1, **{name: upsert.excluded[name] for name in columns}},
        )
        async with self._write(guild_id=guild_id) as conn:
            await conn.execute(upsert)
            if "read_channel_ids" in changes:
                await conn.execute(delete(guild_read_channels).where(guild_read_channels.c.guild_id == guild_id))
                if checked.read_channel_ids:
                    await conn.execute(
                        insert(guild_read_channels),
                        [{"guild_id": guild_id, "channel_id": channel} for channel in checked.read_channel_ids],
                    )
            return await self._load_settings(conn, guild_id)

    async def _load_settings(self, conn: AsyncConnection, guild_id: int) -> GuildSettings:
        # One statement, so the settings and the channel list come from the same snapshot.
        query = (
            select(guild_settings, guild_read_channels.c.channel_id)
            .outerjoin(guild_read_channels, guild_read_channels.c.guild_id == guild_settings.c.guild_id)
            .where(guild_settings.c.guild_id == guild_id)
        )
        rows = (await conn.execute(query)).all()
        if not rows:
            return GuildSettings()
        stored = {name: rows[0]._mapping[name] for name in _SETTINGS_COLUMNS}
        channels = [row.channel_id for row in rows if row.channel_id is not None]
        return GuildSettings().with_values({"read_channel_ids": channels, **stored})

    # --- user preferences ---

    async def get_user_prefs(self, user_id: int, guild_id: int | None) -> UserPrefs:
        """The user's choices in that server, each falling back to their global one (``guild_id`` None: global)."""
        scope = _scope(guild_id)
        key = CacheKey("prefs", scope, user_id)
        return await self._cached(key, lambda conn: self._load_prefs(conn, user_id, scope))

    async def set_user_prefs(
        self, user_id: int, guild_id: int | None, **changes: Unpack[UserPrefsChanges]
    ) -> UserPrefs:
        """Change some of the user's choices in that scope (None clears one); return the scope's choices."""
        checked = UserPrefs().replace(**changes)
        columns = {name: getattr(checked, name) for name in changes}
        scope = _scope(guild_id)
        key = (user_prefs.c.user_id == user_id) & (user_prefs.c.guild_id == scope)
        upsert = self._insert(user_prefs).values(user_id=user_id, guild_id=scope, **columns)
        index = [user_prefs.c.user_id, user_prefs.c.guild_id]
        upsert = (
            upsert.on_conflict_do_update(index_elements=index, set_={name: upsert.excluded[name] for name in columns})
            if columns
            else upsert.on_conflict_do_nothing(index_elements=index)
        )
        async with self._write(user_id=user_id, guild_id=_prefs_cache_guild(scope)) as conn:
            await conn.execute(upsert)
            prefs = _prefs_from_row((await conn.execute(select(user_prefs).where(key))).one()._mapping)
            if prefs.is_empty:
                await conn.execute(delete(user_prefs).where(key))
        return prefs

    async def reset_user_prefs(self, user_id: int, guild_id: int | None) -> bool:
        """Forget the user's choices in that scope; False if there were none."""
        scope = _scope(guild_id)
        async with self._write(user_id=user_id, guild_id=_prefs_cache_guild(scope)) as conn:
            result = await conn.execute(
                delete(user_prefs).where(user_prefs.c.user_id == user_id, user_prefs.c.guild_id == scope)
            )
        return result.rowcount > 0

    async def _load_prefs(self, conn: AsyncConnection, user_id: int, scope: int) -> UserPrefs:
        rows = await conn.execute(
            select(user_prefs).where(user_prefs.c.user_id == user_id, user_prefs.c.guild_id.in_((scope, GLOBAL_SCOPE)))
        )
        by_scope = {row.guild_id: _prefs_from_row(row._mapping) for row in rows}
        return by_scope.get(scope, UserPrefs()).over(by_scope.get(GLOBAL_SCOPE, UserPrefs()))

    # --- dictionary ---

    async def add_entry(
        self, guild_id: int, pattern: str, replacement: str, *, is_regex: bool = False, created_by: int | None = None
    ) -> DictionaryEntry:
        """Add an entry, or replace the one with the same pattern; :class:`DictionaryError` if invalid or full."""
        entry = DictionaryEntry(pattern, replacement, is_regex, created_by)
        statement = self._insert(dictionary_entries).values(_entry_row(guild_id, entry))
        statement = statement.on_conflict_do_update(
            index_elements=[dictionary_entries.c.guild_id, dictionary_entries.c.pattern],
            set_={name: statement.excluded[name] for name in ("replacement", "is_regex", "created_by")},
        )
        async with self._write(guild_id=guild_id) as conn:
            await conn.execute(statement)
            entries = select(func.count()).select_from(dictionary_entries)
            count: int = (await conn.execute(entries.where(dictionary_entries.c.guild_id == guild_id))).scalar_one()
            if count > MAX_DICTIONARY_ENTRIES:
                raise DictionaryError(f"The dictionary is full ({MAX_DICTIONARY_ENTRIES} entries); remove some first.")
        return entry

    async def remove_entry(self, guild_id: int, pattern: str) -> bool:
        """Remove the entry with exactly this pattern; False if there was none."""
        async with self._write(guild_id=guild_id) as conn:
            result = await conn.execute(
                delete(dictionary_entries).where(
                    dictionary_entries.c.guild_id == guild_id, dictionary_entries.c.pattern == pattern
                )
            )
        return result.rowcount > 0

    async def list_entries(self, guild_id: int) -> tuple[DictionaryEntry, ...]:
        """The server's entries, oldest first (the order they are applied in)."""
        return await self._cached(CacheKey("dictionary", guild_id), lambda conn: self._load_entries(conn, guild_id))

    async def replace_entries(self, guild_id: int, entries: Iterable[DictionaryEntry]) -> int:
        """Make ``entries`` the whole dictionary (an import): all of them or, on any error, none; return the count."""
        entries = list(entries)
        check_entry_set(entries)
        async with self._write(guild_id=guild_id) as conn:
            await conn.execute(delete(dictionary_entries).where(dictionary_entries.c.guild_id == guild_id))
            if entries:
                await conn.execute(insert(dictionary_entries), [_entry_row(guild_id, entry) for entry in entries])
        return len(entries)

    async def _load_entries(self, conn: AsyncConnection, guild_id: int) -> tuple[DictionaryEntry, ...]:
        rows = await conn.execute(
            select(dictionary_entries)
            .where(dictionary_entries.c.guild_id == guild_id)
            .order_by(dictionary_entries.c.id)
        )
        return tuple(DictionaryEntry(row.pattern, row.replacement, row.is_regex, row.created_by) for row in rows)

    # --- mutes ---

    async def mute(self, guild_id: int, user_id: int, *, by: int | None = None) -> bool:
        """Stop reading this user aloud in this server; False if they already were muted."""
        async with self._write(guild_id=guild_id) as conn:
            result = await conn.execute(
                self._insert(muted_users)
                .values(guild_id=guild_id, user_id=user_id, muted_by=by, muted_at=datetime.now(UTC))
                .on_conflict_do_nothing()
            )
        return result.rowcount > 0

    async def unmute(self, guild_id: int, user_id: int) -> bool:
        """False if the user was not muted."""
        async with self._write(guild_id=guild_id) as conn:
            result = await conn.execute(
                delete(muted_users).where(muted_users.c.guild_id == guild_id, muted_users.c.user_id == user_id)
            )
        return result.rowcount > 0

    async def is_muted(self, guild_id: int, user_id: int) -> bool:
        return user_id in await self._cached(CacheKey("muted", guild_id), lambda conn: self._load_muted(conn, guild_id))

    async def list_muted(self, guild_id: int) -> list[Mute]:
        """Who is muted in this server, by whom and since when, longest-muted first."""
        async with self._read() as conn:
            rows = await conn.execute(
                select(muted_users)
                .where(muted_users.c.guild_id == guild_id)
                .order_by(muted_users.c.muted_at, muted_users.c.user_id)
            )
            return [Mute(row.user_id, row.muted_by, _utc(row.muted_at)) for row in rows]

    async def _load_muted(self, conn: AsyncConnection, guild_id: int) -> frozenset[int]:
        rows = await conn.execute(select(muted_users.c.user_id).where(muted_users.c.guild_id == guild_id))
        return frozenset(rows.scalars())

    # --- usage ---

    async def add_usage(
        self, guild_id: int, user_id: int, characters: int, day: date, *, requests: int = 1, fallback: bool = False
    ) -> None:
        """Count a synthesis for the server and user on ``day`` (the caller's UTC date): against the budgets, or
        (``fallback``: the fallback engine said it) only as shown usage."""
        if characters < 0 or requests < 0:
            raise ValueError("Usage counts cannot be negative.")
        counts = {"characters": 0, "requests": 0, "fallback_characters": characters, "fallback_requests": requests} \
            if fallback else {"characters": characters, "requests": requests, "fallback_characters": 0,
                              "fallback_requests": 0}
        async with self._write(invalidate=False) as conn:
            await conn.execute(
                self._add_usage_statement(), {"guild_id": guild_id, "user_id": user_id, "day": day, **counts}
            )

    async def usage_since(self, guild_id: int, since: date, *, user_id: int | None = None) -> Usage:
        """Totals from ``since`` (inclusive) to now, for the server or one user in it (budgets, ``/usage``)."""
        query = select(*_USAGE_SUMS).where(usage.c.guild_id == guild_id, usage.c.day >= since)
        if user_id is not None:
            query = query.where(usage.c.user_id == user_id)
        async with self._read() as conn:
            return Usage(*(int(total or 0) for total in (await conn.execute(query)).one()))

    async def usage_by_user(self, guild_id: int, since: date, *, limit: int | None = None) -> list[tuple[int, Usage]]:
        """Per-user totals from ``since``, biggest first; user ``FORGOTTEN_USER`` (0) holds forgotten users' counts."""
        query = (
            select(usage.c.user_id, *_USAGE_SUMS)
            .where(usage.c.guild_id == guild_id, usage.c.day >= since)
            .group_by(usage.c.user_id)
            .order_by(_USAGE_SUMS[0].desc(), _USAGE_SUMS[2].desc(), usage.c.user_id)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [(user, Usage(*(int(total) for total in totals))) for user, *totals in rows]

    def _add_usage_statement(self) -> Any:
        statement = self._insert(usage)
        return statement.on_conflict_do_update(
            index_elements=[usage.c.guild_id, usage.c.user_id, usage.c.day],
            set_={
                name: usage.c[name] + statement.excluded[name]
                for name in ("characters", "requests", "fallback_characters", "fallback_requests")
            },
        )

    # --- voice sessions to rejoin ---

    async def remember_voice_session(self, guild_id: int, channel_id: int) -> None:
        """The bot is in ``channel_id`` on this server now (a join or a move)."""
        statement = self._insert(voice_sessions).values(
            guild_id=guild_id, channel_id=channel_id, joined_at=datetime.now(UTC)
        )
        statement = statement.on_conflict_do_update(
            index_elements=[voice_sessions.c.guild_id],
            set_={"channel_id": statement.excluded.channel_id, "joined_at": statement.excluded.joined_at},
        )
        async with self._write(invalidate=False) as conn:
            await conn.execute(statement)

    async def forget_voice_session(self, guild_id: int, channel_id: int | None = None) -> bool:
        """The bot left on purpose (or was removed): do not come back. With ``channel_id``, only if the record
        still names that channel. False if there was nothing to forget."""
        condition = voice_sessions.c.guild_id == guild_id
        if channel_id is not None:
            condition &= voice_sessions.c.channel_id == channel_id
        async with self._write(invalidate=False) as conn:
            result = await conn.execute(delete(voice_sessions).where(condition))
        return result.rowcount > 0

    async def voice_sessions(self) -> list[VoiceRecord]:
        """Every remembered voice session, of every server (each process picks the servers it runs)."""
        async with self._read() as conn:
            rows = await conn.execute(select(voice_sessions).order_by(voice_sessions.c.guild_id))
            return [VoiceRecord(row.guild_id, row.channel_id, _utc(row.joined_at)) for row in rows]

    # --- the owner's bot-wide controls ---

    async def owner_state(self) -> OwnerState:
        """The blocklists and the engines switched off (``bot.owner_controls`` keeps them in memory)."""
        async with self._read() as conn:
            users = (await conn.execute(select(blocked_users.c.user_id))).scalars()
            guilds = (await conn.execute(select(blocked_guilds.c.guild_id))).scalars()
            engines = (await conn.execute(select(disabled_engines.c.engine))).scalars()
            return OwnerState(frozenset(users), frozenset(guilds), frozenset(engines))

    async def set_user_blocked(self, user_id: int, blocked: bool) -> bool:
        """Block or unblock a user bot-wide; False when they already were (or were not) blocked."""
        return await self._set_flag(blocked_users, "user_id", user_id, "blocked_at", blocked)

    async def set_guild_blocked(self, guild_id: int, blocked: bool) -> bool:
        """Block or unblock a server bot-wide; False when nothing changed."""
        return await self._set_flag(blocked_guilds, "guild_id", guild_id, "blocked_at", blocked)

    async def set_engine_disabled(self, engine: str, disabled: bool) -> bool:
        """Switch an engine off (or back on) bot-wide; False when nothing changed."""
        return await self._set_flag(disabled_engines, "engine", engine, "disabled_at", disabled)

    async def _set_flag(self, table: Table, key: str, value: object, stamp: str, on: bool) -> bool:
        async with self._write(invalidate=False) as conn:
            if on:
                statement = self._insert(table).values({key: value, stamp: datetime.now(UTC)})
                result = await conn.execute(statement.on_conflict_do_nothing())
            else:
                result = await conn.execute(delete(table).where(table.c[key] == value))
        return result.rowcount > 0

    async def schema_version(self) -> int:
        """The newest migration applied (0: none), for tools that read a database without migrating it."""
        async with self._read() as conn:
            return int((await conn.execute(select(func.max(schema_version.c.version)))).scalar_one() or 0)

    async def usage_everywhere(self, since: date) -> Usage:
        """Totals of every server from ``since`` (the owner's stats)."""
        async with self._read() as conn:
            row = (await conn.execute(select(*_USAGE_SUMS).where(usage.c.day >= since))).one()
            return Usage(*(int(total or 0) for total in row))

    async def budget_use(self, today: date, month_start: date) -> list[BudgetUse]:
        """Servers with a daily or monthly budget, with what they used today and this month, fullest first."""
        daily, monthly = guild_settings.c.daily_char_budget, guild_settings.c.monthly_char_budget
        today_sum = func.coalesce(func.sum(case((usage.c.day >= today, usage.c.characters), else_=0)), 0)
        month_sum = func.coalesce(func.sum(usage.c.characters), 0)
        query = (
            select(guild_settings.c.guild_id, daily, monthly, today_sum, month_sum)
            .select_from(guild_settings.outerjoin(
                usage, (usage.c.guild_id == guild_settings.c.guild_id) & (usage.c.day >= month_start)))
            .where(daily.is_not(None) | monthly.is_not(None))
            .group_by(guild_settings.c.guild_id, daily, monthly)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        uses = [BudgetUse(int(g), d, m, int(t), int(mo)) for g, d, m, t, mo in rows]
        return sorted(uses, key=lambda use: (-use.fullness, use.guild_id))

    # --- data protection ---

    async def forget_user(self, user_id: int) -> None:
        """Leave no row that names this user (see the module docstring for what happens to each kind)."""
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    select(usage.c.guild_id, usage.c.day, usage.c.characters, usage.c.requests,
                           usage.c.fallback_characters, usage.c.fallback_requests)
                    .where(usage.c.user_id == user_id)
                    .order_by(usage.c.guild_id, usage.c.day)  # a fixed lock order: no deadlock with another forget
                )
            ).all()
            if rows:
                await conn.execute(
                    self._add_usage_statement(),
                    [{**row._mapping, "user_id": FORGOTTEN_USER} for row in rows],
                )
                await conn.execute(delete(usage).where(usage.c.user_id == user_id))
            await conn.execute(delete(user_prefs).where(user_prefs.c.user_id == user_id))
            await conn.execute(delete(muted_users).where(muted_users.c.user_id == user_id))
            await conn.execute(update(muted_users).where(muted_users.c.muted_by == user_id).values(muted_by=None))
            await conn.execute(
                update(dictionary_entries).where(dictionary_entries.c.created_by == user_id).values(created_by=None)
            )


def _scope(guild_id: int | None) -> int:
    return GLOBAL_SCOPE if guild_id is None else guild_id


def _prefs_cache_guild(scope: int) -> int | None:
    """The guild whose cached choices a write in ``scope`` changes: global choices show through in every server
    (None: all of them), a server's only in that server."""
    return None if scope == GLOBAL_SCOPE else scope


def _prefs_from_row(row: RowMapping) -> UserPrefs:
    return UserPrefs(**{name: row[name] for name in _PREFS_COLUMNS})


def _entry_row(guild_id: int, entry: DictionaryEntry) -> dict[str, object]:
    return {"guild_id": guild_id, **dataclasses.asdict(entry)}


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
