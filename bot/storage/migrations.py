"""Numbered schema migrations, applied on start in one transaction.

Each migration describes its own tables as they were at that version, never by importing
:mod:`bot.storage.schema`: the current schema keeps changing, a migration must not. A test builds a
database from these migrations and compares it with ``schema.py``.

To change the schema: edit ``schema.py``, append a ``Migration(n + 1, ...)`` that makes the same change
(new tables and indexes with ``Table.create``/``Index.create``, a new column with a constant
``sqlalchemy.text("ALTER TABLE ... ADD COLUMN ...")``, data fixes with Core statements), and never edit a
migration that has been released.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import write_transaction
from bot.storage.errors import SchemaTooNewError
from bot.storage.schema import schema_version

#: Any constant works; it only has to be the same in every speechbot process sharing a database.
_PG_MIGRATION_LOCK = 0x5EEC_B07


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection], None]


def _initial_schema(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "guild_settings",
        meta,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("revision", Integer, nullable=False),
        Column("autojoin", Boolean, nullable=False),
        Column("default_voice", String(100)),
        Column("default_speed", Float, nullable=False),
        Column("default_format", String(16)),
        Column("default_instructions", Text),
        Column("speak_output", String(16), nullable=False),
        Column("say_name", String(16), nullable=False),
        Column("name_repeat_window", Integer, nullable=False),
        Column("name_mode", String(16), nullable=False),
        Column("max_message_chars", Integer, nullable=False),
        Column("max_repeat_chars", Integer, nullable=False),
        Column("emoji_mode", String(16), nullable=False),
        Column("link_mode", String(16), nullable=False),
        Column("code_mode", String(16), nullable=False),
        Column("skip_bots", Boolean, nullable=False),
        Column("require_author_in_voice", Boolean, nullable=False),
        Column("optout_prefix", String(16), nullable=False),
        Column("required_role_id", BigInteger),
        Column("deny_role_id", BigInteger),
        Column("moderator_role_id", BigInteger),
        Column("idle_timeout", Integer),
        Column("alone_timeout", Integer),
        Column("announce_joins", Boolean, nullable=False),
        Column("backlog_speedup", Float, nullable=False),
        Column("daily_char_budget", BigInteger),
        Column("monthly_char_budget", BigInteger),
        Column("user_chars_per_minute", BigInteger),
    )
    Table(
        "guild_read_channels",
        meta,
        Column("guild_id", BigInteger, ForeignKey("guild_settings.guild_id", ondelete="CASCADE"), primary_key=True),
        Column("channel_id", BigInteger, primary_key=True),
    )
    Table(
        "user_prefs",
        meta,
        Column("user_id", BigInteger, primary_key=True, autoincrement=False),
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("voice", String(100)),
        Column("speed", Float),
        Column("instructions", Text),
        Column("spoken_name", String(100)),
    )
    Table(
        "dictionary_entries",
        meta,
        Column("id", Integer, primary_key=True),
        Column("guild_id", BigInteger, nullable=False),
        Column("pattern", String(100), nullable=False),
        Column("replacement", String(200), nullable=False),
        Column("is_regex", Boolean, nullable=False),
        Column("created_by", BigInteger),
        UniqueConstraint("guild_id", "pattern", name="uq_dictionary_entries_guild_pattern"),
    )
    Table(
        "muted_users",
        meta,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("user_id", BigInteger, primary_key=True, autoincrement=False),
        Column("muted_by", BigInteger),
        Column("muted_at", DateTime(timezone=True), nullable=False),
        Index("ix_muted_users_user_id", "user_id"),
    )
    Table(
        "usage",
        meta,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("user_id", BigInteger, primary_key=True, autoincrement=False),
        Column("day", Date, primary_key=True),
        Column("characters", BigInteger, nullable=False),
        Column("requests", Integer, nullable=False),
        Index("ix_usage_guild_id_day", "guild_id", "day"),
        Index("ix_usage_user_id", "user_id"),
    )
    meta.create_all(conn, checkfirst=False)


def _voice_sessions(conn: Connection) -> None:
    Table(
        "voice_sessions",
        MetaData(),
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("channel_id", BigInteger, nullable=False),
        Column("joined_at", DateTime(timezone=True), nullable=False),
    ).create(conn)


def _fallback_usage(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE usage ADD COLUMN fallback_characters BIGINT NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE usage ADD COLUMN fallback_requests INTEGER NOT NULL DEFAULT 0"))


def _hold_settings(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE guild_settings ADD COLUMN hold_mode VARCHAR(16) NOT NULL DEFAULT 'early'"))
    conn.execute(text("ALTER TABLE guild_settings ADD COLUMN hold_seconds FLOAT"))


def _owner_controls(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "blocked_users",
        meta,
        Column("user_id", BigInteger, primary_key=True, autoincrement=False),
        Column("blocked_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "blocked_guilds",
        meta,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("blocked_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "disabled_engines",
        meta,
        Column("engine", String(32), primary_key=True),
        Column("disabled_at", DateTime(timezone=True), nullable=False),
    )
    meta.create_all(conn, checkfirst=False)


def _language(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE guild_settings ADD COLUMN language VARCHAR(16) NOT NULL DEFAULT 'en'"))


def _distinct_voices(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE guild_settings ADD COLUMN distinct_voices BOOLEAN NOT NULL DEFAULT false"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "voice sessions to rejoin after a restart", _voice_sessions),
    Migration(3, "usage said by the fallback engine", _fallback_usage),
    Migration(4, "read-aloud hold mode and length per server", _hold_settings),
    Migration(5, "the owner's blocklists and engine kill switch", _owner_controls),
    Migration(6, "the language a server's read-aloud speaks around messages", _language),
    Migration(7, "a distinct voice for each member without one", _distinct_voices),
)


async def migrate(engine: AsyncEngine, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database lacks, all in one transaction; return their versions.

    Concurrent starts are safe: PostgreSQL takes a transaction-scoped advisory lock, SQLite's write
    transaction is exclusive. Raises :class:`SchemaTooNewError` (changing nothing) when the database
    knows a version the code does not.
    """
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise ValueError("Migrations must be numbered 1, 2, 3, ... in order.")
    async with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        await conn.run_sync(schema_version.create, checkfirst=True)
        current = (await conn.execute(select(func.max(schema_version.c.version)))).scalar_one() or 0
        if current > len(migrations):
            raise SchemaTooNewError(current, len(migrations))
        applied = []
        for migration in migrations[current:]:
            await conn.run_sync(migration.upgrade)
            await conn.execute(
                insert(schema_version).values(
                    version=migration.version, description=migration.description, applied_at=datetime.now(UTC)
                )
            )
            applied.append(migration.version)
        return applied
